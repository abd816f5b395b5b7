// /connect/return: where a redirect institution sends the user back (in the popup). Close it.
'use strict';
(() => {
  const T = {
    en: 'You can close this window and return to the app',
    es: 'Puedes cerrar esta ventana y volver a la aplicación',
    pt: 'Você pode fechar esta janela e voltar ao aplicativo',
    fr: 'Vous pouvez fermer cette fenêtre et revenir à l’application',
  };
  const lang = [...(navigator.languages || []), navigator.language, 'en'].map((l) => (l || '').toLowerCase().split('-')[0]).find((l) => T[l]);
  document.documentElement.lang = lang;
  document.getElementById('msg').textContent = T[lang];
  // Drop the callback's query (state, codes) from the address bar and history.
  history.replaceState(null, '', location.pathname);
  window.close();
})();
