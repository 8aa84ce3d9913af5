/** uvfio's version, from package.json. */
import { createRequire } from 'node:module';

/** e.g. `0.1.0` */
export function uvfioVersion(): string {
  // dist/src/cli/version.js → package.json
  const pkg = createRequire(import.meta.url)('../../../package.json') as { version: string };
  return pkg.version;
}
