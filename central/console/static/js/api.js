// Calls to central's own /api/v1, with the session cookie and the CSRF header it requires.
const csrf = document.querySelector('meta[name="csrf-token"]').content;

export async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  return { status: response.status, ok: response.ok, data };
}

export async function html(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  const template = document.createElement("template");
  template.innerHTML = await response.text();
  return template.content;
}
