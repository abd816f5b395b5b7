// The Sandbox's fake bank consent page (/connect/sandbox/authorize), shown in the redirect popup.
// It only ever navigates to this origin's callback: redirect_uri is ignored on purpose.
'use strict';
(() => {
  const T = {
    en: { note: 'Sandbox — no real bank', title: 'Authorise access', approve: 'Approve', deny: 'Deny', noState: 'This request is incomplete: start again from the app.',
      text: (b) => `An app is asking, through Puente, to read your ${b} accounts, balances and transactions. Do you approve?` },
    es: { note: 'Sandbox — no es un banco real', title: 'Autoriza el acceso', approve: 'Aprobar', deny: 'Rechazar', noState: 'Esta solicitud está incompleta: vuelve a empezar desde la aplicación.',
      text: (b) => `Una aplicación pide, a través de Puente, leer tus cuentas, saldos y movimientos de ${b}. ¿Lo apruebas?` },
  };
  const lang = [...(navigator.languages || []), 'en'].map((l) => l.toLowerCase().split('-')[0]).find((l) => T[l]);
  const s = T[lang];
  const q = new URLSearchParams(location.search);
  const state = q.get('state') || '';
  const ext = (q.get('institution') || '').replace(/^sandbox-[a-z]{2}-/i, '');
  const name = ext.split(/[-_]+/).filter(Boolean).map((w) => w[0].toUpperCase() + w.slice(1)).join(' ') || 'Sandbox Bank';
  const $ = (id) => document.getElementById(id);
  document.documentElement.lang = lang;
  document.title = name;
  $('bank').textContent = name;
  $('note').textContent = s.note;
  $('title').textContent = s.title;
  $('text').textContent = s.text(name);
  $('approve').textContent = s.approve;
  $('deny').textContent = s.deny;
  const go = (result) => {
    $('approve').disabled = true;
    $('deny').disabled = true;
    location.assign('/v1/connections:callback?' + new URLSearchParams({ state, result }));
  };
  if (!state) {
    $('err').textContent = s.noState;
    $('approve').disabled = true;
    $('deny').disabled = true;
  }
  $('approve').addEventListener('click', () => go('approve'));
  $('deny').addEventListener('click', () => go('deny'));
})();
