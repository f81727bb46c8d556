// The demo lead screen's glue: the token (from the URL fragment #token=..., which never leaves the
// browser, or the form) goes to configurePanel; the lead's fields become the panel's attributes.
import { configurePanel } from "/panel/panel.js";

const KEY = "playbook.panel.token";
const m = /(?:^#|&)token=([^&]*)/.exec(location.hash);
if (m) {
  sessionStorage.setItem(KEY, decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
}
const connect = () => configurePanel({ token: sessionStorage.getItem(KEY) || undefined, repId: "demo-rep" });
connect();

document.getElementById("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = document.getElementById("token");
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = "";
  connect();
});

const panel = document.querySelector("playbook-recommendations");
for (const name of ["lead-id", "stage", "context", "language"]) {
  const input = document.getElementById(name);
  const apply = () => (input.value ? panel.setAttribute(name, input.value) : panel.removeAttribute(name));
  input.addEventListener("change", apply);
  apply();
}
