/** `uvfio modify`: change a definition (works without a daemon). */
import { VfioError } from '../../base/errors.js';
import { given, flag, indexOption, jsonfileOpt, jsonOpt, parentOpt, requiredUuid, str, typeOpt, uuidOpt, type Command } from '../args.js';
import { readJsonFile } from '../context.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, prettyJson } from '../output.js';

export const modifyCommand: Command = {
  name: 'modify',
  summary: 'change a definition: type, start mode, attributes',
  synopsis: [
    'modify -u UUID [-p PARENT] [-t TYPE] [-a | -m]',
    'modify -u UUID [-p PARENT] --addattr NAME --value VALUE [-i INDEX]',
    'modify -u UUID [-p PARENT] --delattr [-i INDEX]',
    'modify -u UUID [-p PARENT] --jsonfile FILE',
  ],
  description: `Change a device's definition. A running device is not affected: the change
applies at its next start. Works without a daemon.`,
  options: [
    uuidOpt('the device'),
    parentOpt('its parent, when several define the UUID'),
    typeOpt('a new type'),
    { name: 'auto', short: 'a', help: 'start it whenever the daemon starts' },
    { name: 'manual', short: 'm', help: 'start it only on "uvfio start"' },
    { name: 'addattr', value: 'NAME', help: 'add attribute NAME (with --value), at the end or at --index' },
    { name: 'value', value: 'VALUE', help: 'the value of --addattr' },
    { name: 'delattr', help: 'delete the last attribute, or the one at --index' },
    { name: 'index', short: 'i', value: 'INDEX', help: 'position for --addattr / --delattr (see "uvfio list -d -v")' },
    jsonfileOpt('replace type, start mode and attributes with an mdevctl JSON file'),
    { name: 'defined', short: 'd', help: "accepted for mdevctl's sake: modify always changes the definition" },
    { name: 'live', short: 'l', help: 'not supported: stop and start the device to apply a change', hidden: true },
    jsonOpt('print the new definition as JSON'),
  ],
  examples: [
    { command: 'uvfio modify -u UUID --manual', says: 'no longer start it when the daemon starts' },
    { command: 'uvfio modify -u UUID -t mtty-2', says: 'a two-port card from its next start on' },
  ],
  async run(ctx, v) {
    const mode = outputMode(v);
    if (flag(v, 'live')) throw new VfioError('EOPNOTSUPP', 'modify --live is not supported: stop and start the device to apply a change');
    const jsonfile = str(v, 'jsonfile');
    const uuid = requiredUuid(v, 'modify');
    const args = given({
      parent: str(v, 'parent'),
      type: str(v, 'type'),
      auto: flag(v, 'auto'),
      manual: flag(v, 'manual'),
      addattr: str(v, 'addattr'),
      value: str(v, 'value'),
      delattr: flag(v, 'delattr'),
      index: indexOption(v),
      config: jsonfile === undefined ? undefined : readJsonFile(jsonfile),
    });
    const { device } = await ctx.call('modify', { uuid, ...args });
    if (mode === 'json') ctx.print(prettyJson(deviceJson(device)));
  },
};
