'use strict';
// The demo integrator's front end: get a link token from its own backend, open the widget, and
// print every callback. window.demoMessages keeps them for the browser tests.
window.demoMessages = [];
const log = document.getElementById('log');
const status = document.getElementById('status');
const reuse = document.getElementById('reuse');
let lastToken = null;

function record(kind, name, payload) {
  window.demoMessages.push({ kind, name, payload, at: new Date().toISOString() });
  const li = document.createElement('li');
  li.dataset.kind = kind;
  li.dataset.name = name;
  const head = document.createElement('strong');
  head.textContent = kind === 'event' ? `onEvent("${name}")` : name;
  const body = document.createElement('pre');
  body.textContent = JSON.stringify(payload, null, 2);
  li.append(head, body);
  log.prepend(li);
}

function setStatus(state, text) {
  status.dataset.state = state;
  status.textContent = text;
}

function open(token) {
  const connect = PuenteConnect.create({
    linkToken: token,
    onEvent: (name, metadata) => record('event', name, metadata),
    onSuccess: (data) => {
      record('success', 'onSuccess', data);
      setStatus('success', `Linked ${data.institution?.name ?? ''}: consent ${data.consentId}.`);
    },
    onExit: (error, metadata) => {
      record('exit', 'onExit', { error, metadata });
      setStatus('exit', error ? `Closed: ${error.message || error.code}` : 'Closed by the user.');
    },
  });
  window.demoConnect = connect;
  connect.open();
  setStatus('open', 'The widget is open.');
}

document.getElementById('options').addEventListener('submit', async (e) => {
  e.preventDefault();
  setStatus('loading', 'Creating a link token…');
  const resp = await fetch('/api/link-token', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      language: document.getElementById('language').value,
      country: document.getElementById('country').value,
    }),
  });
  const body = await resp.json();
  if (!resp.ok) {
    setStatus('error', `Could not create a link token: ${body.error}`);
    return;
  }
  lastToken = body.link_token;
  reuse.disabled = false;
  open(lastToken);
});

reuse.addEventListener('click', () => lastToken && open(lastToken));
