/**
 * The `emit` process: the one place that decides how it ends. Whatever happens —
 * bad input, a full disk, a hung collector, a bug — it exits 0, prints nothing to
 * stdout, and is gone by its deadline. Trouble goes to the log file.
 */
import { defaultIo, runEmit } from './emit';

const started = Date.now();
const argv = process.argv.slice(2);
const helpRequested = argv.includes('--help') || argv.includes('-h');

if (!helpRequested) {
  // Hook stdout can be injected into the model's context: make writing to it impossible.
  process.stdout.write = (() => true) as typeof process.stdout.write;
}

const quit = () => process.exit(0);
process.on('uncaughtException', quit);
process.on('unhandledRejection', quit);
process.on('SIGPIPE', () => undefined);

// Backstop beyond the configured deadline, in case anything at all hangs. The
// event is already spooled before the network is touched, so this loses nothing.
const backstopMs = Number(process.env.CLAUDE_METRICS_TIMEOUT_MS) > 0 ? Number(process.env.CLAUDE_METRICS_TIMEOUT_MS) + 700 : 1000;
setTimeout(quit, Math.min(backstopMs, 61_000));

runEmit(argv, process.env, defaultIo(), started).then(quit, quit);
