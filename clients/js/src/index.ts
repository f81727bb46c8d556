// @playbook/client: the browser-safe entry point (no Node modules, no runtime dependencies).
export * from "./protocol.js";
export * from "./client.js";
export * from "./outbox.js";
export * from "./indexeddb.js";
