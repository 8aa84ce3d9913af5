/** `uvfio modify`: change a definition (works without a daemon). */
import { VfioError } from '../../base/errors.js';
import { given, flag, indexOption, requiredUuid, str, type Command } from '../args.js';
import { readJsonFile } from '../context.js';
import { outputMode } from '../output-mode.js';
import { deviceJson, prettyJson } from '../output.js';

export const modifyCommand: Command = {
  name: 'modify',
  summary: 'change a definition: type, start mode, attributes',
  help: `Usage: uvfio modify -u UUID [-p PARENT] [-t TYPE] [-a | -m]
       uvfio modify -u UUID [-p PARENT] --addattr NAME --value VALUE [-i INDEX]
       uvfio modify -u UUID [-p PARENT] --delattr [-i INDEX]
       uvfio modify -u UUID [-p PARENT] --jsonfile FILE

Change a device's definition. A running device is not affected: the change
applies at its next start. Works without a daemon.

  -u, --uuid UUID       the device
  -p, --parent PARENT   its parent, when several define the UUID
  -t, --type TYPE       a new type
  -a, --auto            start it whenever the daemon starts
  -m, --manual          start it only on "uvfio start"
      --addattr NAME    add attribute NAME (with --value), at the end or at --index
      --value VALUE     the value of --addattr
      --delattr         delete the last attribute, or the one at --index
  -i, --index INDEX     position for --addattr / --delattr (see "uvfio list -d -v")
      --jsonfile FILE   replace type, start mode and attributes with an mdevctl JSON file
  -d, --defined         accepted for mdevctl's sake: modify always changes the definition
      --json            print the new definition as JSON`,
  options: {
    uuid: { type: 'string', short: 'u' },
    parent: { type: 'string', short: 'p' },
    type: { type: 'string', short: 't' },
    auto: { type: 'boolean', short: 'a' },
    manual: { type: 'boolean', short: 'm' },
    addattr: { type: 'string' },
    value: { type: 'string' },
    delattr: { type: 'boolean' },
    index: { type: 'string', short: 'i' },
    jsonfile: { type: 'string' },
    defined: { type: 'boolean', short: 'd' },
    live: { type: 'boolean', short: 'l' },
    json: { type: 'boolean' },
  },
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
