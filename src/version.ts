import { version } from '../package.json';

/** The emitter's version, sent in every event's context. */
export const VERSION: string = version;
