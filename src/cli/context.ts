/**
 * What every command gets: where the daemon is, how to ask it, where to
 * print. `call` goes to the daemon, and for definition-only requests falls
 * back to the store when no daemon runs (see offline.ts).
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { VfioError, isVfioError } from '../base/errors.js';
import { parseConfigText, toConfigJson, type ConfigJson } from '../daemon/definition.js';
import type { DaemonPaths } from '../daemon/paths.js';
import type { ArgsOf, ControlOp, EventOf, ResultOf } from '../daemon/protocol.js';
import { isDaemonNotRunning, request } from './client.js';
import { callOffline, worksOffline } from './offline.js';

const STARTING_WAIT_MS = 15_000;

export interface CliContext {
  paths: DaemonPaths;
  /** Prints to stdout. */
  print(text: string): void;
  /** Tells the user something on stderr, as a `uvfio: …` line, without failing. */
  say(sentence: string): void;
  /** Reports each sentence as a `uvfio: …` line on stderr and makes the exit status 1, without stopping. */
  fail(sentences: string[]): void;
  /** True once fail() was called. */
  readonly failed: boolean;
  /** Asks the daemon (or the store, see offline.ts); `onEvent` gets what the request reports while it runs. */
  call<O extends ControlOp>(op: O, args: ArgsOf<O>, onEvent?: (event: EventOf<O>) => void): Promise<ResultOf<O>>;
}

/** A command's context over `paths`; `print` and `printError` are where stdout and stderr text go. */
export function makeContext(paths: DaemonPaths, print: (text: string) => void, printError: (text: string) => void): CliContext {
  let failed = false;
  return {
    paths,
    print,
    say(sentence) {
      printError(`uvfio: ${sentence}\n`);
    },
    fail(sentences) {
      failed = true;
      for (const s of sentences) printError(`uvfio: ${s}\n`);
    },
    get failed() {
      return failed;
    },
    async call(op, args, onEvent) {
      // A daemon still auto-starting answers EAGAIN: wait for it, a while.
      const deadline = Date.now() + STARTING_WAIT_MS;
      for (;;) {
        try {
          return await request(paths.controlSocket, op, args, onEvent === undefined ? {} : { onEvent: onEvent as (e: unknown) => void });
        } catch (err) {
          if (isDaemonNotRunning(err) && worksOffline(op, args)) return callOffline(paths, op, args);
          if (!isVfioError(err, 'EAGAIN') || Date.now() > deadline) throw err;
          await sleep(100);
        }
      }
    },
  };
}

/**
 * Reads and checks a `--jsonfile` here, where its path means something,
 * so a mistake names the file and the field; sends the checked form.
 */
export function readJsonFile(path: string): ConfigJson {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new VfioError(code === 'ENOENT' ? 'ENOENT' : code === 'EACCES' ? 'EACCES' : 'EIO', `cannot read ${path}: ${(err as Error).message}`);
  }
  return toConfigJson(parseConfigText(text, path));
}
