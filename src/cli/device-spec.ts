/**
 * mdevctl's DEVICESPEC as define and start take it: a UUID, a parent, and
 * a type or a JSON file; and how both print what they did.
 */
import { given, jsonfileOpt, jsonOpt, parentOpt, str, typeOpt, uuidOpt, uuidOption, type OptionDoc, type Values } from './args.js';
import { readJsonFile, type CliContext } from './context.js';
import type { ConfigJson } from '../daemon/definition.js';
import type { MdevInfo } from '../daemon/protocol.js';
import { outputMode } from './output-mode.js';
import { deviceJson, prettyJson } from './output.js';

/** The options of a DEVICESPEC; the lines that differ between define and start are given. */
export function deviceSpecOptions(help: { parent: string; jsonfile: string; json: string }): OptionDoc[] {
  return [
    uuidOpt("the device's UUID"),
    parentOpt(help.parent),
    typeOpt('its type'),
    jsonfileOpt(help.jsonfile),
    jsonOpt(help.json),
    { name: 'addattr', value: 'NAME', help: 'with --value: a vendor attribute of the device (virtio-blk: path)' },
    { name: 'value', value: 'VALUE', help: 'the value of --addattr' },
  ];
}

export interface DeviceSpecArgs {
  uuid?: string;
  parent?: string;
  type?: string;
  config?: ConfigJson;
  addattr?: string;
  value?: string;
}

/** The request arguments for the options given (the JSON file read and checked here). */
export function deviceSpecArgs(v: Values): DeviceSpecArgs {
  const jsonfile = str(v, 'jsonfile');
  return given({
    uuid: uuidOption(v),
    parent: str(v, 'parent'),
    type: str(v, 'type'),
    config: jsonfile === undefined ? undefined : readJsonFile(jsonfile),
    addattr: str(v, 'addattr'),
    value: str(v, 'value'),
  });
}

/** With --json the device; otherwise, as mdevctl, the UUID only when it was generated. */
export function printDefinedOrStarted(ctx: CliContext, v: Values, result: { device: MdevInfo; generated: boolean }): void {
  if (outputMode(v) === 'json') ctx.print(prettyJson(deviceJson(result.device)));
  else if (result.generated) ctx.print(`${result.device.uuid}\n`);
}
