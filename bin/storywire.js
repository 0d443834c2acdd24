#!/usr/bin/env -S node --max-semi-space-size=4
// The package's `storywire` command: the server `npm start` runs (dist/main.js), with the same flags, and
// --help / --version. The shebang gives node the young-generation cap `npm start` gives it (README, "Running it").
import '../dist/main.js';
