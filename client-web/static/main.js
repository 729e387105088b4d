// Starts the WASM client and exposes its debug state. A file, not an inline script, so the
// page's Content-Security-Policy can allow only this server's own scripts.
import init, { arenaDebug } from '/client_web.js';
await init();
window.arenaDebug = () => JSON.parse(arenaDebug());
