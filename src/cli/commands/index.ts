/** Every verb of the command line, in the order `uvfio --help` lists them. */
import type { Command } from '../args.js';
import { completionCommand } from './completion.js';
import { consoleCommand } from './console.js';
import { daemonCommand } from './daemon.js';
import { defineCommand } from './define.js';
import { helpCommand } from './help.js';
import { listCommand } from './list.js';
import { migrateCommand } from './migrate.js';
import { modifyCommand } from './modify.js';
import { screenshotCommand } from './screenshot.js';
import { replayCommand } from './replay.js';
import { startCommand } from './start.js';
import { traceCommand } from './trace.js';
import { stopCommand } from './stop.js';
import { typesCommand } from './types.js';
import { undefineCommand } from './undefine.js';

const verbs: Command[] = [
  daemonCommand,
  typesCommand,
  listCommand,
  defineCommand,
  undefineCommand,
  startCommand,
  stopCommand,
  modifyCommand,
  screenshotCommand,
  consoleCommand,
  migrateCommand,
  traceCommand,
  replayCommand,
];
verbs.push(helpCommand(verbs), completionCommand(verbs));

export const COMMANDS: readonly Command[] = verbs;
