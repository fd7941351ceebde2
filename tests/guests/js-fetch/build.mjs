// Build app.js into a component with componentize-js's defaults.
//   node build.mjs [OUT]   (default: app.wasm)
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const { component } = await componentize({
  sourcePath: here('./app.js'),
  witPath: here('../../../wit'),
  worldName: 'ivr-app',
});
await writeFile(process.argv[2] ?? here('./app.wasm'), component);
