/**
 * What the console logs through: the daemon's Logger fits it (the console
 * sits beside the daemon and imports nothing of it).
 */
export type ConsoleLogFields = Record<string, unknown>;

export interface ConsoleLog {
  debug(msg: string, fields?: ConsoleLogFields): void;
  info(msg: string, fields?: ConsoleLogFields): void;
  warn(msg: string, fields?: ConsoleLogFields): void;
  error(msg: string, fields?: ConsoleLogFields): void;
}

/** `log` with `fields` added to every line. */
export function withFields(log: ConsoleLog, fields: ConsoleLogFields): ConsoleLog {
  return {
    debug: (msg, f) => log.debug(msg, { ...fields, ...f }),
    info: (msg, f) => log.info(msg, { ...fields, ...f }),
    warn: (msg, f) => log.warn(msg, { ...fields, ...f }),
    error: (msg, f) => log.error(msg, { ...fields, ...f }),
  };
}
