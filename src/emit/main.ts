// Placeholder: the emit hot path lands with the emitter core.
process.exitCode = 0;
