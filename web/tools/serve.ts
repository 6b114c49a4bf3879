// `npm run web`: builds the demo site and serves it on http://127.0.0.1:8080/ (or --port N, --host H).
// WebGPU needs a secure context: localhost and 127.0.0.1 are one; from another machine, serve over https.

import { parseArgs } from 'node:util';
import { buildSite } from './build.js';
import { startServer } from './static-server.js';

const { values } = parseArgs({
  options: { port: { type: 'string', default: '8080' }, host: { type: 'string', default: '127.0.0.1' } },
});
const site = await buildSite();
const server = await startServer({ '/': site }, { port: Number(values.port), host: values.host });
process.stdout.write(`glm4v web demo: ${server.url}  (serving ${site}; Ctrl-C to stop)\n`);
process.stdout.write(
  'Open it in a browser with WebGPU (Chrome/Edge 113+). A model folder can be picked in the page, or served\n',
);
process.stdout.write('from any static server that answers HTTP Range requests and given as a URL.\n');
process.on('SIGINT', () => void server.close().then(() => process.exit(0)));
