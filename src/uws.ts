// Loads uWebSockets.js and refuses to run on the package's silent pure-JS fallback.
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export class NativeUwsError extends Error {
  override name = 'NativeUwsError';
}

/** True when the native `uws_<platform>_<arch>_<abi>.node` binary is the one loaded. */
export function isNativeLoaded(): boolean {
  const binary = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  return Object.keys(require.cache).some((k) => k.endsWith(binary));
}

function load(): typeof UWS {
  // The package warns on stderr and falls back to JS when the binary cannot load, or when
  // UWS_USE_FALLBACK is set; both are refused here rather than run slowly without notice.
  const mod = require('uWebSockets.js') as typeof UWS;
  if (!isNativeLoaded()) {
    throw new NativeUwsError(
      `the native uWebSockets.js binary did not load for ${process.platform}-${process.arch} (Node ABI ${process.versions.modules}); ` +
        'refusing to start on the slow JavaScript fallback. Use Node 20 on Linux x64 with glibc >= 2.27 and unset UWS_USE_FALLBACK.',
    );
  }
  return mod;
}

export const uws = load();
export type { UWS };
