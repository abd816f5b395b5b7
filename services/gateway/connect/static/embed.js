/*
 * Puente Connect: the embed script. Load it from your Puente gateway and open the widget with a
 * link token your backend created (POST /v1/link-tokens):
 *
 *   <script src="https://puente.example.com/connect/embed.js"></script>
 *   const connect = PuenteConnect.create({
 *     linkToken,
 *     onSuccess({ consentId, connectionId, institution }) {},  // the user linked an account
 *     onEvent(name, metadata) {},   // OPEN, INSTITUTION_SELECTED, SUBMIT_CREDENTIALS, MFA_REQUIRED, ERROR, EXIT, ...
 *     onExit(error, metadata) {},   // the user left; error is null or { code, message }
 *     container: element,           // optional: render inside this element instead of an overlay
 *   });
 *   connect.open();
 *   connect.exit();      // ask the widget to close (it reports EXIT, then onExit)
 *   connect.destroy();   // remove it at once, without callbacks
 *
 * Messages go both ways through postMessage with a fixed target origin: this script talks only to
 * the gateway's origin, and the widget only to the page's origin when the client registered it.
 * Messages from any other window or origin are ignored. No message carries a credential or token.
 */
(function () {
  'use strict';
  if (window.PuenteConnect) return;

  var script = document.currentScript;
  var widgetURL = new URL('/connect', script && script.src ? script.src : location.href);
  var widgetOrigin = widgetURL.origin;

  function noop() {}

  function create(options) {
    var o = options || {};
    if (typeof o.linkToken !== 'string' || o.linkToken === '') {
      throw new Error('PuenteConnect.create: linkToken is required');
    }
    var onSuccess = typeof o.onSuccess === 'function' ? o.onSuccess : noop;
    var onEvent = typeof o.onEvent === 'function' ? o.onEvent : noop;
    var onExit = typeof o.onExit === 'function' ? o.onExit : noop;
    var frame = null;
    var wrapper = null;
    var returnFocus = null;
    var savedOverflow = '';
    var done = false;

    function call(fn, args) {
      try {
        fn.apply(null, args);
      } catch (err) {
        setTimeout(function () { throw err; });
      }
    }

    function onMessage(e) {
      if (!frame || e.source !== frame.contentWindow || e.origin !== widgetOrigin) return;
      var m = e.data;
      if (!m || typeof m !== 'object' || m.source !== 'puente-connect' || m.version !== 1 || done) return;
      if (m.type === 'event' && typeof m.name === 'string') {
        call(onEvent, [m.name, m.metadata || {}]);
      } else if (m.type === 'success' && m.data) {
        done = true;
        destroy();
        call(onSuccess, [m.data]);
      } else if (m.type === 'exit') {
        done = true;
        destroy();
        call(onExit, [m.error || null, m.metadata || {}]);
      }
    }

    function open() {
      if (frame) return;
      done = false;
      returnFocus = document.activeElement;
      frame = document.createElement('iframe');
      frame.title = 'Puente Connect';
      frame.setAttribute('sandbox', 'allow-scripts allow-same-origin allow-forms allow-popups allow-popups-to-escape-sandbox');
      frame.setAttribute('referrerpolicy', 'origin');
      frame.setAttribute('allow', 'clipboard-write');
      frame.src = widgetURL.href + '#link_token=' + encodeURIComponent(o.linkToken) +
        '&origin=' + encodeURIComponent(location.origin);
      var s = frame.style;
      s.border = '0';
      s.display = 'block';
      s.width = '100%';
      s.height = '100%';
      s.background = 'transparent';
      if (o.container) {
        wrapper = document.createElement('div');
        wrapper.style.width = '100%';
        wrapper.style.height = '100%';
        wrapper.appendChild(frame);
        o.container.appendChild(wrapper);
      } else {
        wrapper = document.createElement('div');
        wrapper.setAttribute('role', 'dialog');
        wrapper.setAttribute('aria-modal', 'true');
        wrapper.setAttribute('aria-label', 'Puente Connect');
        var w = wrapper.style;
        w.position = 'fixed';
        w.inset = '0';
        w.zIndex = '2147483647';
        w.display = 'flex';
        w.alignItems = 'center';
        w.justifyContent = 'center';
        w.background = 'rgba(15, 23, 42, 0.55)';
        var box = document.createElement('div');
        var b = box.style;
        var small = window.matchMedia && window.matchMedia('(max-width: 480px)').matches;
        b.width = small ? '100%' : '420px';
        b.height = small ? '100%' : 'min(680px, calc(100% - 32px))';
        b.borderRadius = small ? '0' : '16px';
        b.overflow = 'hidden';
        b.boxShadow = '0 24px 64px rgba(15, 23, 42, 0.35)';
        b.background = '#fff';
        box.appendChild(frame);
        wrapper.appendChild(box);
        document.body.appendChild(wrapper);
        savedOverflow = document.documentElement.style.overflow;
        document.documentElement.style.overflow = 'hidden';
      }
      window.addEventListener('message', onMessage);
      frame.focus();
    }

    function destroy() {
      window.removeEventListener('message', onMessage);
      if (wrapper && wrapper.parentNode) wrapper.parentNode.removeChild(wrapper);
      if (!o.container) document.documentElement.style.overflow = savedOverflow;
      frame = null;
      wrapper = null;
      if (returnFocus && typeof returnFocus.focus === 'function') returnFocus.focus();
      returnFocus = null;
    }

    function exit() {
      if (!frame) return;
      frame.contentWindow.postMessage({ source: 'puente-host', version: 1, type: 'exit' }, widgetOrigin);
    }

    return { open: open, exit: exit, destroy: destroy };
  }

  window.PuenteConnect = { create: create, version: 1 };
})();
