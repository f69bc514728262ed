// Placeholder until this command lands; see its issue.
import { CliError } from '../errors';

export default function main(): never {
  throw new CliError('usage is not implemented yet', 'E_NOT_IMPLEMENTED', 1);
}
