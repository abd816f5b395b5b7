// Puente Connect widget. Plain JavaScript, no dependencies, no build step.
// Security rules: DOM is built with createElement/textContent only; credentials, answers and
// tokens live in memory only and never go to the console, postMessage, URLs or storage.
'use strict';
(() => {
const STR = {
en: {
  back: 'Back', close: 'Close', secured: 'Secured by Puente', loading: 'Loading…',
  expiredT: 'This link has expired', expiredB: 'Go back to the app and start again to connect your account.',
  notAllowedT: 'Puente Connect can\'t open here', notAllowedB: 'This website isn\'t authorised to use Puente Connect. Go back to the app you came from.',
  instT: 'Select your bank', instB: 'Choose the institution where you have your account.', search: 'Search for your bank', searchPh: 'Search',
  noResults: 'No results for “{q}”', noResultsB: 'Check the spelling or try another name.', noBanks: 'No banks are available here yet.', instErr: 'We couldn\'t load the list of banks.',
  retry: 'Try again', slow: 'Slow right now', down: 'Unavailable', results: '{n} results',
  unavailT: '{inst} is unavailable right now', unavailB: '{inst} isn\'t responding at the moment, so we can\'t connect to it. Try again later or choose another bank.', another: 'Choose another bank',
  thisApp: 'This app', theApp: 'the app', consentT: '{app} wants to access your {inst} data', consentShare: 'What will be shared',
  ACCOUNTS: 'Account names, types and numbers', BALANCES: 'Balances', TRANSACTIONS: 'Transactions', IDENTITY: 'Name, email, phone and address',
  INVESTMENTS: 'Investments and their holdings', CREDIT_CARDS: 'Credit cards and their statements', REPORTS: 'Reports built from your data',
  month1: '1 month', monthN: '{n} months', until: 'Access for {dur}, until {date}.', untilOnly: 'Access until {date}.',
  withdraw: 'You can withdraw this access at any time.', secure: 'Your credentials are encrypted and never shared with {app}.', cont: 'Continue',
  credT: 'Log in to {inst}', credB: 'Enter the details you use for {inst} online banking.', required: 'This field is required', format: 'Check the format of this field',
  showPwd: 'Show password', choose: 'Select an option', connect: 'Connect', degraded: '{inst} is slow right now. Connecting may take longer than usual.',
  badCreds: 'The username or password is incorrect', sendErr: 'We couldn\'t send your details. Check them and try again.',
  redirT: 'Continue at {inst}', redirB: 'You\'ll continue at {inst} to sign in and approve access. Then you\'ll come back here.', redirGo: 'Continue to {inst}',
  waitT: 'Waiting for {inst}…', waitB: 'Finish signing in and approving access in the {inst} window.', reopen: 'Reopen the {inst} window',
  blocked: 'Your browser blocked the window.', openTab: 'Open {inst} in a new tab',
  progT: 'Connecting to {inst}…', progB: 'This usually takes a few seconds.', progStart: 'Opening a secure session.', progRun: 'Logging in to your bank.',
  code: 'Enter the code', password: 'Enter your security password', options: 'Choose an option', images: 'Choose the image', captcha: 'Type the characters you see', accounts: 'Choose the accounts to share',
  mfaB: '{inst} is asking for an extra verification step.', accB: 'Only the accounts you select will be shared with {app}.', accLegend: 'Your accounts',
  mfaRetry: 'That didn\'t work, try again', expiresIn: 'Expires in {t}', expiredMfa: 'This request has expired.', chImg: 'Security image from {inst}', mfaErr: 'This request changed or was already answered. Please try again.',
  okT: 'Connected', okB: '{inst} is connected to {app}.', done: 'All done. You can close this window.', closed: 'You can close this window.',
  LOCKED: ['Your account is locked', '{inst} has locked online access to your account. Unlock it with {inst}, then try again.'],
  USER_ACTION_REQUIRED: ['Action needed at {inst}', '{inst} needs you to do something on its website or app first, such as accepting new terms. Then try again.'],
  MFA_TIMEOUT: ['The verification timed out', 'The extra verification step wasn\'t completed in time. Try again.'],
  MFA_FAILED: ['The verification failed', 'The answer to the security check wasn\'t accepted. Try again.'],
  INSTITUTION_UNAVAILABLE: ['{inst} is unavailable', '{inst} isn\'t responding right now. Try again later.'],
  REDIRECT_DENIED: ['Access wasn\'t approved', 'Access wasn\'t approved at {inst}. If that was a mistake, try again.'],
  LOGIN_REQUIRED: ['Sign in again', '{inst} asked you to sign in again. Try again.'],
  INTERNAL: ['Something went wrong', 'We couldn\'t connect to {inst} because of a problem on our side. Try again in a few minutes.'],
  UNKNOWN: ['We couldn\'t connect', 'Something went wrong while connecting to {inst}. Try again.'],
  errT: 'Something went wrong', errB: 'We couldn\'t reach Puente. Check your internet connection and try again.',
},
es: {
  back: 'Atrás', close: 'Cerrar', secured: 'Protegido por Puente', loading: 'Cargando…',
  expiredT: 'Este enlace ha caducado', expiredB: 'Vuelve a la aplicación y empieza de nuevo para conectar tu cuenta.',
  notAllowedT: 'Puente Connect no puede abrirse aquí', notAllowedB: 'Este sitio web no está autorizado para usar Puente Connect. Vuelve a la aplicación desde la que llegaste.',
  instT: 'Selecciona tu banco', instB: 'Elige la institución donde tienes tu cuenta.', search: 'Busca tu banco', searchPh: 'Buscar',
  noResults: 'No hay resultados para «{q}»', noResultsB: 'Revisa la ortografía o prueba otro nombre.', noBanks: 'Aún no hay bancos disponibles aquí.', instErr: 'No pudimos cargar la lista de bancos.',
  retry: 'Reintentar', slow: 'Lento ahora', down: 'No disponible', results: '{n} resultados',
  unavailT: '{inst} no está disponible ahora', unavailB: '{inst} no responde en este momento, así que no podemos conectarnos. Inténtalo más tarde o elige otro banco.', another: 'Elegir otro banco',
  thisApp: 'Esta aplicación', theApp: 'la aplicación', consentT: '{app} quiere acceder a tus datos de {inst}', consentShare: 'Qué se compartirá',
  ACCOUNTS: 'Nombres, tipos y números de cuenta', BALANCES: 'Saldos', TRANSACTIONS: 'Movimientos', IDENTITY: 'Nombre, correo, teléfono y dirección',
  INVESTMENTS: 'Inversiones y sus posiciones', CREDIT_CARDS: 'Tarjetas de crédito y sus estados de cuenta', REPORTS: 'Informes elaborados con tus datos',
  month1: '1 mes', monthN: '{n} meses', until: 'Acceso por {dur}, hasta el {date}.', untilOnly: 'Acceso hasta el {date}.',
  withdraw: 'Puedes retirar este acceso cuando quieras.', secure: 'Tus credenciales se cifran y nunca se comparten con {app}.', cont: 'Continuar',
  credT: 'Inicia sesión en {inst}', credB: 'Ingresa los datos que usas en la banca en línea de {inst}.', required: 'Este campo es obligatorio', format: 'Revisa el formato de este campo',
  showPwd: 'Mostrar contraseña', choose: 'Selecciona una opción', connect: 'Conectar', degraded: '{inst} está lento ahora. La conexión puede tardar más de lo normal.',
  badCreds: 'El usuario o la contraseña son incorrectos', sendErr: 'No pudimos enviar tus datos. Revísalos e inténtalo de nuevo.',
  redirT: 'Continúa en {inst}', redirB: 'Continuarás en {inst} para iniciar sesión y aprobar el acceso. Después volverás aquí.', redirGo: 'Continuar a {inst}',
  waitT: 'Esperando a {inst}…', waitB: 'Termina de iniciar sesión y aprobar el acceso en la ventana de {inst}.', reopen: 'Volver a abrir la ventana de {inst}',
  blocked: 'Tu navegador bloqueó la ventana.', openTab: 'Abrir {inst} en una pestaña nueva',
  progT: 'Conectando con {inst}…', progB: 'Esto suele tardar unos segundos.', progStart: 'Abriendo una sesión segura.', progRun: 'Iniciando sesión en tu banco.',
  code: 'Ingresa el código', password: 'Ingresa tu clave de seguridad', options: 'Elige una opción', images: 'Elige la imagen', captcha: 'Escribe los caracteres que ves', accounts: 'Elige las cuentas que compartirás',
  mfaB: '{inst} pide un paso adicional de verificación.', accB: 'Solo se compartirán con {app} las cuentas que selecciones.', accLegend: 'Tus cuentas',
  mfaRetry: 'No funcionó, inténtalo de nuevo', expiresIn: 'Caduca en {t}', expiredMfa: 'Esta solicitud ha caducado.', chImg: 'Imagen de seguridad de {inst}', mfaErr: 'Esta solicitud cambió o ya fue respondida. Inténtalo de nuevo.',
  okT: 'Conectado', okB: '{inst} está conectado a {app}.', done: 'Listo. Puedes cerrar esta ventana.', closed: 'Puedes cerrar esta ventana.',
  LOCKED: ['Tu cuenta está bloqueada', '{inst} bloqueó el acceso en línea a tu cuenta. Desbloquéalo con {inst} y vuelve a intentarlo.'],
  USER_ACTION_REQUIRED: ['Se requiere una acción en {inst}', '{inst} necesita que hagas algo primero en su sitio web o app, como aceptar nuevas condiciones. Luego vuelve a intentarlo.'],
  MFA_TIMEOUT: ['Se agotó el tiempo de verificación', 'El paso de verificación no se completó a tiempo. Vuelve a intentarlo.'],
  MFA_FAILED: ['La verificación falló', 'La respuesta al control de seguridad no fue aceptada. Vuelve a intentarlo.'],
  INSTITUTION_UNAVAILABLE: ['{inst} no está disponible', '{inst} no responde en este momento. Inténtalo más tarde.'],
  REDIRECT_DENIED: ['No se aprobó el acceso', 'El acceso no se aprobó en {inst}. Si fue un error, vuelve a intentarlo.'],
  LOGIN_REQUIRED: ['Vuelve a iniciar sesión', '{inst} pidió que vuelvas a iniciar sesión. Vuelve a intentarlo.'],
  INTERNAL: ['Algo salió mal', 'No pudimos conectar con {inst} por un problema de nuestra parte. Inténtalo en unos minutos.'],
  UNKNOWN: ['No pudimos conectar', 'Algo salió mal al conectar con {inst}. Vuelve a intentarlo.'],
  errT: 'Algo salió mal', errB: 'No pudimos comunicarnos con Puente. Revisa tu conexión a internet y vuelve a intentarlo.',
},
pt: {
  back: 'Voltar', close: 'Fechar', secured: 'Protegido pela Puente', loading: 'Carregando…',
  expiredT: 'Este link expirou', expiredB: 'Volte ao aplicativo e comece de novo para conectar sua conta.',
  notAllowedT: 'O Puente Connect não pode abrir aqui', notAllowedB: 'Este site não está autorizado a usar o Puente Connect. Volte ao aplicativo de onde você veio.',
  instT: 'Selecione seu banco', instB: 'Escolha a instituição onde você tem sua conta.', search: 'Pesquise seu banco', searchPh: 'Pesquisar',
  noResults: 'Nenhum resultado para “{q}”', noResultsB: 'Confira a ortografia ou tente outro nome.', noBanks: 'Ainda não há bancos disponíveis aqui.', instErr: 'Não conseguimos carregar a lista de bancos.',
  retry: 'Tentar novamente', slow: 'Lento agora', down: 'Indisponível', results: '{n} resultados',
  unavailT: '{inst} está indisponível agora', unavailB: '{inst} não está respondendo no momento, então não conseguimos conectar. Tente mais tarde ou escolha outro banco.', another: 'Escolher outro banco',
  thisApp: 'Este aplicativo', theApp: 'o aplicativo', consentT: '{app} quer acessar seus dados do {inst}', consentShare: 'O que será compartilhado',
  ACCOUNTS: 'Nomes, tipos e números das contas', BALANCES: 'Saldos', TRANSACTIONS: 'Transações', IDENTITY: 'Nome, e-mail, telefone e endereço',
  INVESTMENTS: 'Investimentos e suas posições', CREDIT_CARDS: 'Cartões de crédito e suas faturas', REPORTS: 'Relatórios gerados a partir dos seus dados',
  month1: '1 mês', monthN: '{n} meses', until: 'Acesso por {dur}, até {date}.', untilOnly: 'Acesso até {date}.',
  withdraw: 'Você pode revogar este acesso a qualquer momento.', secure: 'Suas credenciais são criptografadas e nunca compartilhadas com {app}.', cont: 'Continuar',
  credT: 'Entre no {inst}', credB: 'Informe os dados que você usa no internet banking do {inst}.', required: 'Este campo é obrigatório', format: 'Confira o formato deste campo',
  showPwd: 'Mostrar senha', choose: 'Selecione uma opção', connect: 'Conectar', degraded: '{inst} está lento agora. A conexão pode demorar mais que o normal.',
  badCreds: 'O usuário ou a senha estão incorretos', sendErr: 'Não conseguimos enviar seus dados. Confira e tente novamente.',
  redirT: 'Continue no {inst}', redirB: 'Você continuará no {inst} para entrar e aprovar o acesso. Depois voltará para cá.', redirGo: 'Continuar no {inst}',
  waitT: 'Aguardando o {inst}…', waitB: 'Termine de entrar e aprovar o acesso na janela do {inst}.', reopen: 'Reabrir a janela do {inst}',
  blocked: 'Seu navegador bloqueou a janela.', openTab: 'Abrir o {inst} em uma nova aba',
  progT: 'Conectando ao {inst}…', progB: 'Isso costuma levar alguns segundos.', progStart: 'Abrindo uma sessão segura.', progRun: 'Entrando no seu banco.',
  code: 'Digite o código', password: 'Digite sua senha de segurança', options: 'Escolha uma opção', images: 'Escolha a imagem', captcha: 'Digite os caracteres que você vê', accounts: 'Escolha as contas que serão compartilhadas',
  mfaB: '{inst} está pedindo uma verificação adicional.', accB: 'Somente as contas selecionadas serão compartilhadas com {app}.', accLegend: 'Suas contas',
  mfaRetry: 'Não funcionou, tente novamente', expiresIn: 'Expira em {t}', expiredMfa: 'Esta solicitação expirou.', chImg: 'Imagem de segurança do {inst}', mfaErr: 'Esta solicitação mudou ou já foi respondida. Tente novamente.',
  okT: 'Conectado', okB: '{inst} está conectado a {app}.', done: 'Pronto. Você pode fechar esta janela.', closed: 'Você pode fechar esta janela.',
  LOCKED: ['Sua conta está bloqueada', '{inst} bloqueou o acesso on-line à sua conta. Desbloqueie com o {inst} e tente novamente.'],
  USER_ACTION_REQUIRED: ['Ação necessária no {inst}', '{inst} precisa que você faça algo antes no site ou app, como aceitar novos termos. Depois tente novamente.'],
  MFA_TIMEOUT: ['A verificação expirou', 'A etapa de verificação não foi concluída a tempo. Tente novamente.'],
  MFA_FAILED: ['A verificação falhou', 'A resposta à verificação de segurança não foi aceita. Tente novamente.'],
  INSTITUTION_UNAVAILABLE: ['{inst} está indisponível', '{inst} não está respondendo agora. Tente mais tarde.'],
  REDIRECT_DENIED: ['O acesso não foi aprovado', 'O acesso não foi aprovado no {inst}. Se foi um engano, tente novamente.'],
  LOGIN_REQUIRED: ['Entre novamente', '{inst} pediu que você entre novamente. Tente novamente.'],
  INTERNAL: ['Algo deu errado', 'Não conseguimos conectar ao {inst} por um problema do nosso lado. Tente em alguns minutos.'],
  UNKNOWN: ['Não conseguimos conectar', 'Algo deu errado ao conectar ao {inst}. Tente novamente.'],
  errT: 'Algo deu errado', errB: 'Não conseguimos falar com a Puente. Verifique sua conexão com a internet e tente novamente.',
},
fr: {
  back: 'Retour', close: 'Fermer', secured: 'Sécurisé par Puente', loading: 'Chargement…',
  expiredT: 'Ce lien a expiré', expiredB: 'Revenez à l’application et recommencez pour connecter votre compte.',
  notAllowedT: 'Puente Connect ne peut pas s’ouvrir ici', notAllowedB: 'Ce site n’est pas autorisé à utiliser Puente Connect. Revenez à l’application d’origine.',
  instT: 'Choisissez votre banque', instB: 'Sélectionnez l’établissement où se trouve votre compte.', search: 'Rechercher votre banque', searchPh: 'Rechercher',
  noResults: 'Aucun résultat pour « {q} »', noResultsB: 'Vérifiez l’orthographe ou essayez un autre nom.', noBanks: 'Aucune banque n’est encore disponible ici.', instErr: 'Impossible de charger la liste des banques.',
  retry: 'Réessayer', slow: 'Lent en ce moment', down: 'Indisponible', results: '{n} résultats',
  unavailT: '{inst} est indisponible pour le moment', unavailB: '{inst} ne répond pas en ce moment, la connexion est donc impossible. Réessayez plus tard ou choisissez une autre banque.', another: 'Choisir une autre banque',
  thisApp: 'Cette application', theApp: 'l’application', consentT: '{app} souhaite accéder à vos données {inst}', consentShare: 'Ce qui sera partagé',
  ACCOUNTS: 'Noms, types et numéros des comptes', BALANCES: 'Soldes', TRANSACTIONS: 'Opérations', IDENTITY: 'Nom, e-mail, téléphone et adresse',
  INVESTMENTS: 'Placements et leurs positions', CREDIT_CARDS: 'Cartes de crédit et leurs relevés', REPORTS: 'Rapports établis à partir de vos données',
  month1: '1 mois', monthN: '{n} mois', until: 'Accès pendant {dur}, jusqu’au {date}.', untilOnly: 'Accès jusqu’au {date}.',
  withdraw: 'Vous pouvez retirer cet accès à tout moment.', secure: 'Vos identifiants sont chiffrés et ne sont jamais partagés avec {app}.', cont: 'Continuer',
  credT: 'Connectez-vous à {inst}', credB: 'Saisissez les identifiants de votre banque en ligne {inst}.', required: 'Ce champ est obligatoire', format: 'Vérifiez le format de ce champ',
  showPwd: 'Afficher le mot de passe', choose: 'Sélectionnez une option', connect: 'Se connecter', degraded: '{inst} est lent en ce moment. La connexion peut prendre plus de temps que d’habitude.',
  badCreds: 'L’identifiant ou le mot de passe est incorrect', sendErr: 'Impossible d’envoyer vos informations. Vérifiez-les et réessayez.',
  redirT: 'Continuez sur {inst}', redirB: 'Vous allez continuer sur {inst} pour vous connecter et approuver l’accès, puis revenir ici.', redirGo: 'Continuer vers {inst}',
  waitT: 'En attente de {inst}…', waitB: 'Terminez la connexion et l’approbation dans la fenêtre {inst}.', reopen: 'Rouvrir la fenêtre {inst}',
  blocked: 'Votre navigateur a bloqué la fenêtre.', openTab: 'Ouvrir {inst} dans un nouvel onglet',
  progT: 'Connexion à {inst}…', progB: 'Cela prend généralement quelques secondes.', progStart: 'Ouverture d’une session sécurisée.', progRun: 'Connexion à votre banque.',
  code: 'Saisissez le code', password: 'Saisissez votre mot de passe de sécurité', options: 'Choisissez une option', images: 'Choisissez l’image', captcha: 'Saisissez les caractères affichés', accounts: 'Choisissez les comptes à partager',
  mfaB: '{inst} demande une vérification supplémentaire.', accB: 'Seuls les comptes sélectionnés seront partagés avec {app}.', accLegend: 'Vos comptes',
  mfaRetry: 'Cela n’a pas fonctionné, réessayez', expiresIn: 'Expire dans {t}', expiredMfa: 'Cette demande a expiré.', chImg: 'Image de sécurité de {inst}', mfaErr: 'Cette demande a changé ou a déjà reçu une réponse. Réessayez.',
  okT: 'Connecté', okB: '{inst} est connecté à {app}.', done: 'Terminé. Vous pouvez fermer cette fenêtre.', closed: 'Vous pouvez fermer cette fenêtre.',
  LOCKED: ['Votre compte est bloqué', '{inst} a bloqué l’accès en ligne à votre compte. Débloquez-le auprès de {inst}, puis réessayez.'],
  USER_ACTION_REQUIRED: ['Action requise chez {inst}', '{inst} vous demande d’abord une action sur son site ou son application, par exemple accepter de nouvelles conditions. Puis réessayez.'],
  MFA_TIMEOUT: ['Le délai de vérification est dépassé', 'L’étape de vérification n’a pas été terminée à temps. Réessayez.'],
  MFA_FAILED: ['La vérification a échoué', 'La réponse au contrôle de sécurité n’a pas été acceptée. Réessayez.'],
  INSTITUTION_UNAVAILABLE: ['{inst} est indisponible', '{inst} ne répond pas en ce moment. Réessayez plus tard.'],
  REDIRECT_DENIED: ['L’accès n’a pas été approuvé', 'L’accès n’a pas été approuvé chez {inst}. S’il s’agit d’une erreur, réessayez.'],
  LOGIN_REQUIRED: ['Reconnectez-vous', '{inst} demande une nouvelle connexion. Réessayez.'],
  INTERNAL: ['Un problème est survenu', 'Impossible de se connecter à {inst} à cause d’un problème de notre côté. Réessayez dans quelques minutes.'],
  UNKNOWN: ['Connexion impossible', 'Un problème est survenu lors de la connexion à {inst}. Réessayez.'],
  errT: 'Un problème est survenu', errB: 'Impossible de joindre Puente. Vérifiez votre connexion internet et réessayez.',
},
};

const NS = 'http://www.w3.org/2000/svg';
const ICONS = {
  check: 'M5 12.5l4.5 4.5L19 7.5', lock: 'M7 11V8a5 5 0 0 1 10 0v3M5.5 11h13v10h-13z', search: 'M10.5 4a6.5 6.5 0 1 0 0 13 6.5 6.5 0 0 0 0-13zM20 20l-4.8-4.8',
  eye: 'M2 12s3.6-6.5 10-6.5S22 12 22 12s-3.6 6.5-10 6.5S2 12 2 12zM12 9.2a2.8 2.8 0 1 0 0 5.6 2.8 2.8 0 0 0 0-5.6z',
  alert: 'M12 8.5v4.5M12 16.2v.3M10.3 4L2.6 17.5A2 2 0 0 0 4.3 20.5h15.4a2 2 0 0 0 1.7-3L13.7 4a2 2 0 0 0-3.4 0z',
  chev: 'M9.5 6l6 6-6 6', ext: 'M14 4h6v6M20 4l-9 9M18 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V7a1 1 0 0 1 1-1h5', clock: 'M12 7v5l3 2M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18z',
};
const FINAL = new Set(['SUCCEEDED', 'FAILED']);
const RUNNING = new Set(['PENDING', 'STARTING', 'RUNNING', 'UNSPECIFIED']);
const NOT_OPEN = new Set(['loading', 'error', 'expired', 'not-allowed', 'closed']);

const S = {
  token: null, hostOrigin: null, framed: window.parent !== window, originOk: null, session: null, lang: 'en',
  inst: null, consent: null, fixed: false, conn: null, challenge: null, answered: null, lastError: null,
  exited: false, succeeded: false, popup: null, redirectFlow: false, sawRedirect: false, authUrl: null,
  watch: null, screen: 'loading', back: null, timers: [], opened: false, marked: false, instAbort: null,
  query: '', values: {}, progressEl: null,
};

// ---------- helpers ----------
const $ = (sel, root = document) => root.querySelector(sel);
const short = (v, prefix) => (v || '').replace(prefix, '') || 'UNSPECIFIED';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function t(key, vars) {
  let s = STR[S.lang]?.[key] ?? STR.en[key] ?? key;
  if (vars && typeof s === 'string') s = s.replace(/\{(\w+)\}/g, (m, k) => (vars[k] ?? m));
  return s;
}
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const kid of kids.flat()) if (kid != null && kid !== false) el.append(kid);
  return el;
}
function icon(name, cls) {
  const svg = document.createElementNS(NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  svg.setAttribute('class', 'ico' + (cls ? ' ' + cls : ''));
  const p = document.createElementNS(NS, 'path');
  p.setAttribute('d', ICONS[name]);
  svg.append(p);
  return svg;
}
function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
function validOrigin(o) {
  try { const u = new URL(o); return u.origin !== 'null' && u.origin === o ? o : null; } catch { return null; }
}
function pickLang(sessLang) {
  for (const c of [sessLang, ...(navigator.languages || []), navigator.language]) {
    const base = (c || '').toLowerCase().split(/[-_]/)[0];
    if (STR[base]) return base;
  }
  return 'en';
}
function applyLang() {
  document.documentElement.lang = S.lang;
  $('[data-action="back"]').setAttribute('aria-label', t('back'));
  $('[data-action="close"]').setAttribute('aria-label', t('close'));
  $('#secured').textContent = t('secured');
}
const instName = () => S.inst?.name || '';
const appName = (cap) => S.session?.client_name || t(cap ? 'thisApp' : 'theApp');

// ---------- messaging ----------
function canPost() {
  if (!S.framed || !S.hostOrigin || S.exited || S.originOk === false) return false;
  if (S.originOk === null) {
    const ao = location.ancestorOrigins;
    if (ao && ao.length && ao[0] !== S.hostOrigin) return false;
  }
  return true;
}
function post(msg) {
  if (!canPost()) return;
  try { window.parent.postMessage({ source: 'puente-connect', version: 1, ...msg }, S.hostOrigin); } catch { /* ignore */ }
}
function meta(extra) {
  const m = { view: S.screen, timestamp: new Date().toISOString() };
  if (S.originOk !== true) { if (extra?.error_code) m.error_code = extra.error_code; return m; }
  m.language = S.lang;
  if (S.inst) { m.institution_id = S.inst.id; m.institution_name = S.inst.name; }
  if (S.conn) { m.connection_id = S.conn.id; m.status = short(S.conn.status, 'CONNECTION_STATUS_'); }
  return Object.assign(m, extra);
}
function event(name, extra) { post({ type: 'event', name, metadata: meta(extra) }); }
function reportError(code, message) {
  S.lastError = { code, message };
  event('ERROR', { error_code: code, error_message: message });
}
function onMessage(e) {
  if (!S.framed || S.exited || S.originOk === false || !S.hostOrigin) return;
  if (e.source !== window.parent || e.origin !== S.hostOrigin) return;
  if (e.data?.source === 'puente-host' && e.data.type === 'exit') doExit();
}
function doExit() {
  if (S.exited) return;
  if (S.originOk === false) return;
  event('EXIT');
  post({ type: 'exit', error: S.succeeded ? null : S.lastError, metadata: meta() });
  S.exited = true;
  stopWatch(); closePopup(); S.instAbort?.abort();
  render('closed', { close: false }, (m) => {
    const h1 = h('h1', { class: S.framed ? 'sr-only' : '', text: t(S.succeeded ? 'done' : 'closed') });
    m.append(h('div', { class: 'center' }, h1));
  });
}

// ---------- API ----------
class ApiError extends Error {
  constructor(status, body) { super(body?.message || 'HTTP ' + status); this.status = status; this.code = body?.code; }
}
async function api(method, path, body, opts = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (opts.auth !== false) headers.Authorization = 'Bearer ' + S.session.session_token;
  const res = await fetch(path, {
    method, headers, body: body ? JSON.stringify(body) : undefined, signal: opts.signal, cache: 'no-store', credentials: 'omit',
  });
  let data = null;
  try { data = await res.json(); } catch { /* empty */ }
  if (!res.ok) throw new ApiError(res.status, data);
  return data || {};
}
function fail(err, retry) {
  if (err?.name === 'AbortError' || S.exited) return;
  if (err?.status === 401) return showExpired();
  showError(retry, err);
}

// ---------- rendering ----------
function clearTimers() { S.timers.forEach(clearInterval); S.timers = []; }
function render(name, opts, build) {
  clearTimers();
  S.screen = name;
  S.progressEl = null;
  const m = $('#screen');
  m.dataset.screen = name;
  m.replaceChildren();
  build(m);
  S.back = opts.back || null;
  $('[data-action="back"]').hidden = !S.back;
  $('[data-action="close"]').hidden = opts.close === false;
  m.scrollTop = 0;
  const h1 = m.querySelector('h1');
  if (h1) { h1.tabIndex = -1; h1.focus({ preventScroll: true }); }
  if (S.session && S.originOk !== false && !S.opened && !NOT_OPEN.has(name)) { S.opened = true; event('OPEN'); }
}
function spinner(lg) { return h('span', { class: 'spinner' + (lg ? ' spinner-lg' : ''), 'aria-hidden': 'true' }); }
function btn(text, action, cls, onclick) {
  return h('button', { type: onclick ? 'button' : 'submit', class: 'btn ' + (cls || 'btn-primary'), 'data-action': action, onclick }, h('span', { text }));
}
function setBusy(b, busy) {
  b.disabled = busy;
  if (busy) { b.setAttribute('aria-busy', 'true'); b.prepend(spinner()); }
  else { b.removeAttribute('aria-busy'); b.querySelector('.spinner')?.remove(); }
}
function hashHue(s) { let x = 0; for (const c of s) x = (x * 31 + c.codePointAt(0)) >>> 0; return x % 360; }
function logo(inst, lg) {
  const name = inst.name || '?';
  const words = name.split(/\s+/).filter((w) => w && !/^(banco|bank|banque|de|del|do|da|la|le|el|the)$/i.test(w));
  const init = ((words[0] || name)[0] + (words[1]?.[0] || '')).toUpperCase();
  const hue = hashHue(name);
  const el = h('span', { class: 'logo' + (lg ? ' logo-lg' : ''), 'aria-hidden': 'true' }, h('span', { text: init }));
  el.style.backgroundColor = `hsl(${hue} 60% 93%)`;
  el.style.color = `hsl(${hue} 65% 27%)`;
  if (/^https:\/\//.test(inst.logo_url || '')) {
    const img = h('img', { alt: '', src: inst.logo_url, decoding: 'async' });
    img.addEventListener('load', () => el.classList.add('has-img'));
    img.addEventListener('error', () => img.remove());
    el.append(img);
  }
  return el;
}
function notice(text, cls) { return h('p', { class: 'notice ' + (cls || '') }, icon('alert'), h('span', { text })); }
function para(text, cls) { return h('p', { class: cls || 'sub', text }); }
function actions(...b) { return h('div', { class: 'actions' }, ...b); }

// ---------- screens ----------
function showLoading() {
  render('loading', {}, (m) => m.append(h('div', { class: 'center' }, spinner(true), h('h1', { class: 'sr-only', text: t('loading') }))));
}
function showExpired() {
  stopWatch(); closePopup();
  render('expired', {}, (m) => m.append(h('div', { class: 'body center-text' },
    h('span', { class: 'badge-icon warn' }, icon('clock')),
    h('h1', { text: t('expiredT') }), para(t('expiredB'))), actions(btn(t('close'), 'exit', '', doExit))));
  reportError('LINK_EXPIRED', t('expiredT'));
}
function showNotAllowed() {
  render('not-allowed', { close: false }, (m) => m.append(h('div', { class: 'body center-text' },
    h('span', { class: 'badge-icon warn' }, icon('alert')), h('h1', { text: t('notAllowedT') }), para(t('notAllowedB')))));
}
function showError(retry, err) {
  stopWatch();
  render('error', {}, (m) => m.append(h('div', { class: 'body center-text' },
    h('span', { class: 'badge-icon bad' }, icon('alert')), h('h1', { text: t('errT') }), para(t('errB'))),
    actions(btn(t('retry'), 'retry', '', () => retry()))));
  reportError('API_ERROR', err?.message || t('errT'));
}

async function exchange() {
  showLoading();
  let sess;
  try {
    sess = await api('POST', '/v1/link-tokens:exchange', { link_token: S.token }, { auth: false });
  } catch (e) {
    if (e.status >= 400 && e.status < 500) { S.token = null; return showExpired(); }
    return showError(exchange, e);
  }
  S.token = null;
  S.lang = pickLang(sess.language);
  applyLang();
  if (S.framed) {
    const ao = location.ancestorOrigins;
    const ok = !!S.hostOrigin && (sess.allowed_origins || []).includes(S.hostOrigin) && !(ao && ao.length && ao[0] !== S.hostOrigin);
    S.originOk = ok;
    if (!ok) return showNotAllowed();
  } else S.originOk = true;
  S.session = sess;
  if (sess.consent_id) { S.fixed = true; return loadConsent(); }
  showInstitutions();
}
async function loadConsent() {
  showLoading();
  try {
    const c = (await api('GET', '/v1/consents/' + encodeURIComponent(S.session.consent_id))).consent;
    const i = (await api('GET', '/v1/institutions/' + encodeURIComponent(c.institution_id))).institution;
    S.consent = c;
    selectInstitution(i, true);
  } catch (e) { fail(e, loadConsent); }
}

// institutions
function showInstitutions() {
  S.inst = null; S.consent = S.fixed ? S.consent : null; S.values = {};
  let timer = 0;
  render('institutions', {}, (m) => {
    const input = h('input', { type: 'search', id: 'search', class: 'input', placeholder: t('searchPh'), autocomplete: 'off', spellcheck: 'false', 'aria-controls': 'results' });
    input.value = S.query;
    input.addEventListener('input', () => {
      clearTimeout(timer);
      timer = setTimeout(() => { S.query = input.value; loadInstitutions(); }, 150);
    });
    m.append(h('div', { class: 'head' }, h('h1', { text: t('instT') }), para(t('instB'))),
      h('div', { class: 'search' }, h('label', { for: 'search', class: 'sr-only', text: t('search') }), icon('search'), input),
      h('p', { class: 'sr-only', id: 'results-status', 'aria-live': 'polite' }),
      h('div', { id: 'results', class: 'results' }, h('div', { class: 'center pad' }, spinner())));
  });
  loadInstitutions();
}
async function loadInstitutions() {
  S.instAbort?.abort();
  const ac = new AbortController();
  S.instAbort = ac;
  const s = S.session;
  const prods = s.products || [];
  const q = S.query.trim();
  const p = new URLSearchParams();
  if (s.country) p.set('country', s.country);
  if (prods[0]) p.set('product', prods[0]);
  if (q) p.set('query', q);
  p.set('page_size', '100');
  $('#results')?.setAttribute('aria-busy', 'true');
  let data;
  try { data = await api('GET', '/v1/institutions?' + p, null, { signal: ac.signal }); } catch (e) {
    if (e.name === 'AbortError' || ac !== S.instAbort) return;
    if (e.status === 401) return showExpired();
    const box = $('#results');
    if (!box) return;
    box.removeAttribute('aria-busy');
    box.replaceChildren(h('div', { class: 'empty' }, para(t('instErr'), 'empty-title'),
      h('button', { type: 'button', class: 'btn btn-secondary btn-inline', 'data-action': 'retry', onclick: loadInstitutions, text: t('retry') })));
    reportError('API_ERROR', e.message);
    return;
  }
  if (ac !== S.instAbort || S.screen !== 'institutions') return;
  const list = (data.institutions || []).filter((i) => prods.every((x) => (i.products || []).includes(x)));
  const box = $('#results');
  box.removeAttribute('aria-busy');
  if (!list.length) {
    box.replaceChildren(h('div', { class: 'empty' }, para(q ? t('noResults', { q }) : t('noBanks'), 'empty-title'), q ? para(t('noResultsB')) : null));
  } else {
    box.replaceChildren(h('ul', { class: 'inst-list', role: 'list' }, list.map((i) => h('li', null, instButton(i)))));
  }
  $('#results-status').textContent = list.length ? t('results', { n: list.length }) : q ? t('noResults', { q }) : t('noBanks');
  if (!S.marked) { S.marked = true; performance.mark('puente:institutions-interactive'); }
}
function instButton(i) {
  const health = short(i.health, 'INSTITUTION_HEALTH_').replace('UNSPECIFIED', 'OPERATIONAL');
  const org = i.organization_name && i.organization_name !== i.name ? h('span', { class: 'inst-org', text: i.organization_name }) : null;
  const badge = health === 'DOWN' ? h('span', { class: 'tag tag-down', text: t('down') })
    : health === 'DEGRADED' ? h('span', { class: 'tag tag-slow', text: t('slow') }) : null;
  return h('button', { type: 'button', class: 'institution', 'data-institution-id': i.id, 'data-health': health, onclick: () => selectInstitution(i) },
    logo(i), h('span', { class: 'inst-text' }, h('span', { class: 'inst-name', text: i.name }), org || badge ? h('span', { class: 'inst-meta' }, org, badge) : null), icon('chev', 'chev'));
}
function selectInstitution(i, auto) {
  S.inst = i;
  if (S.consent && S.consent.institution_id !== i.id) S.consent = null;
  if (!auto) event('INSTITUTION_SELECTED');
  if (short(i.health, 'INSTITUTION_HEALTH_') === 'DOWN') return showUnavailable();
  showConsent();
}
function showUnavailable() {
  render('unavailable', { back: S.fixed ? null : showInstitutions }, (m) => m.append(
    h('div', { class: 'body center-text' }, logo(S.inst, true), h('h1', { text: t('unavailT', { inst: instName() }) }), para(t('unavailB', { inst: instName() }))),
    actions(S.fixed ? btn(t('close'), 'exit', '', doExit) : btn(t('another'), 'choose-another', '', showInstitutions))));
  reportError('INSTITUTION_UNAVAILABLE', t('unavailT', { inst: instName() }));
}

// consent
function fmtDate(d) {
  return new Intl.DateTimeFormat(S.lang === 'en' ? 'en-GB' : S.lang, { day: 'numeric', month: 'short', year: 'numeric' }).format(d);
}
function showConsent() {
  const exp = S.consent?.expire_time ? new Date(S.consent.expire_time) : new Date(Date.now() + 365 * 864e5);
  const months = Math.round((exp - Date.now()) / (30.44 * 864e5));
  const date = fmtDate(exp);
  const dur = months >= 1 ? t('until', { dur: t(months === 1 ? 'month1' : 'monthN', { n: months }), date }) : t('untilOnly', { date });
  render('consent', { back: S.fixed ? null : showInstitutions }, (m) => m.append(
    h('div', { class: 'body' },
      h('div', { class: 'pair', 'aria-hidden': 'true' }, h('span', { class: 'logo logo-lg app-mark' }, $('.brand .mark').cloneNode(true)), h('span', { class: 'dots' }), logo(S.inst, true)),
      h('h1', { text: t('consentT', { app: appName(true), inst: instName() }) }),
      h('h2', { class: 'section', text: t('consentShare') }),
      h('ul', { class: 'checks' }, (S.session.products || []).map((p) => h('li', null, icon('check'), h('span', { text: t(p) })))),
      h('ul', { class: 'facts' },
        h('li', null, icon('clock'), h('span', { text: dur + ' ' + t('withdraw') })),
        h('li', null, icon('lock'), h('span', { text: t('secure', { app: appName(false) }) })))),
    actions(btn(t('cont'), 'continue', '', goAuth))));
}
function goAuth() {
  S.redirectFlow = false; S.sawRedirect = false;
  if (S.inst.auth_mechanism === 'AUTH_MECHANISM_REDIRECT') showRedirect(); else showCredentials();
}
const isDegraded = () => short(S.inst?.health, 'INSTITUTION_HEALTH_') === 'DEGRADED';

// credentials
function showCredentials(formError) {
  const fields = S.inst.credential_fields || [];
  const inputs = [];
  let form;
  render('credentials', { back: showConsent }, (m) => {
    const errBox = h('div', { class: 'form-error', role: 'alert' });
    if (formError) errBox.append(icon('alert'), h('span', { text: formError }));
    form = h('form', { novalidate: true, class: 'body form' },
      h('div', { class: 'head' }, h('div', { class: 'inst-head' }, logo(S.inst), h('span', { text: instName() })),
        h('h1', { text: t('credT', { inst: instName() }) }), para(t('credB', { inst: instName() }))),
      isDegraded() ? notice(t('degraded', { inst: instName() })) : null, errBox,
      fields.map((f) => { const r = credField(f); inputs.push([f, r.input]); return r.wrap; }));
    const submit = btn(t('connect'), 'submit');
    form.append(actions(submit));
    m.append(form);
    form.addEventListener('submit', (e) => { e.preventDefault(); submitCredentials(inputs, submit, errBox); });
  });
}
function credField(f) {
  const id = 'field-' + f.name;
  const hintId = id + '-hint';
  let input;
  if (f.type === 'FIELD_TYPE_SELECT') {
    input = h('select', { id, name: f.name, class: 'input' }, h('option', { value: '', text: t('choose') }),
      (f.options || []).map((o) => h('option', { value: o.value, text: o.label || o.value })));
  } else {
    const pwd = f.type === 'FIELD_TYPE_PASSWORD';
    input = h('input', {
      id, name: f.name, class: 'input', type: pwd ? 'password' : 'text', spellcheck: 'false', autocapitalize: 'none',
      autocomplete: pwd ? 'current-password' : f.is_username ? 'username' : f.is_token ? 'one-time-code' : 'off',
      inputmode: f.is_token ? 'numeric' : null,
    });
    if (!pwd && S.values[f.name]) input.value = S.values[f.name];
  }
  if (f.required) input.setAttribute('aria-required', 'true');
  if (f.description) input.setAttribute('aria-describedby', hintId);
  let control = input;
  if (f.type === 'FIELD_TYPE_PASSWORD') {
    const toggle = h('button', { type: 'button', class: 'reveal', 'aria-pressed': 'false', 'aria-label': t('showPwd'), 'aria-controls': id, 'data-action': 'toggle-password' }, icon('eye'));
    toggle.addEventListener('click', () => {
      const show = input.type === 'password';
      input.type = show ? 'text' : 'password';
      toggle.setAttribute('aria-pressed', String(show));
    });
    control = h('div', { class: 'with-btn' }, input, toggle);
  }
  const wrap = h('div', { class: 'field' }, h('label', { for: id, text: f.label || f.name }), control,
    f.description ? h('p', { class: 'hint', id: hintId, text: f.description }) : null);
  return { wrap, input };
}
function setFieldError(input, msg) {
  const wrap = input.closest('.field');
  wrap.querySelector('.field-error')?.remove();
  const hint = input.getAttribute('aria-describedby')?.split(' ').filter((x) => !x.endsWith('-error')) || [];
  if (!msg) {
    input.removeAttribute('aria-invalid');
    if (hint.length) input.setAttribute('aria-describedby', hint.join(' ')); else input.removeAttribute('aria-describedby');
    return;
  }
  const eid = input.id + '-error';
  const ctl = input.closest('.with-btn, fieldset') || input;
  ctl.after(h('p', { class: 'field-error', id: eid }, icon('alert'), h('span', { text: msg })));
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', [...hint, eid].join(' '));
}
function checkField(f, value) {
  if (!value.trim()) return f.required ? t('required') : null;
  if (f.validation) {
    let re = null;
    try { re = new RegExp(f.validation); } catch { /* skip */ }
    if (re && !re.test(value)) return t('format');
  }
  return null;
}
async function submitCredentials(inputs, submit, errBox) {
  if (submit.disabled) return;
  let first = null;
  const creds = {};
  for (const [f, input] of inputs) {
    const v = input.value;
    const err = checkField(f, v);
    setFieldError(input, err);
    if (err && !first) first = input;
    if (v !== '') creds[f.name] = v;
  }
  if (first) { first.focus(); return; }
  errBox.replaceChildren();
  for (const [f, input] of inputs) if (f.type !== 'FIELD_TYPE_PASSWORD') S.values[f.name] = input.value;
  setBusy(submit, true);
  event('SUBMIT_CREDENTIALS');
  try {
    const consentId = await ensureConsent();
    const r = await api('POST', '/v1/connections', { institution_id: S.inst.id, credentials: creds, consent_id: consentId, request_id: uuid() });
    startConnection(r.connection);
  } catch (e) {
    setBusy(submit, false);
    if (e.status >= 400 && e.status < 500 && e.status !== 401) {
      errBox.replaceChildren(icon('alert'), h('span', { text: t('sendErr') }));
      reportError('API_ERROR', e.message);
    } else fail(e, () => showCredentials());
  }
}
async function ensureConsent() {
  if (S.fixed) return S.session.consent_id;
  if (S.consent?.id && S.consent.institution_id === S.inst.id) return S.consent.id;
  const r = await api('POST', '/v1/consents', { institution_id: S.inst.id, products: S.session.products || [], request_id: uuid() });
  S.consent = r.consent;
  return S.consent.id;
}

// redirect
function showRedirect() {
  render('redirect', { back: showConsent }, (m) => {
    const go = btn(t('redirGo', { inst: instName() }), 'open-redirect', '', () => openRedirect(go));
    go.append(icon('ext'));
    m.append(h('div', { class: 'body center-text' }, logo(S.inst, true),
      h('h1', { text: t('redirT', { inst: instName() }) }), para(t('redirB', { inst: instName() })),
      isDegraded() ? notice(t('degraded', { inst: instName() })) : null), actions(go));
  });
}
async function openRedirect(go) {
  if (go.disabled) return;
  let popup = null;
  try { popup = window.open('about:blank', 'puente-redirect', 'popup,width=480,height=720'); } catch { /* blocked */ }
  S.popup = popup;
  try { if (popup) { popup.document.title = instName(); popup.document.body.textContent = t('loading'); } } catch { /* ignore */ }
  S.redirectFlow = true; S.sawRedirect = false; S.authUrl = null;
  setBusy(go, true);
  event('SUBMIT_CREDENTIALS');
  try {
    const consentId = await ensureConsent();
    const r = await api('POST', '/v1/connections', { institution_id: S.inst.id, consent_id: consentId, request_id: uuid(), redirect_uri: location.origin + '/connect/return' });
    showWaiting();
    startConnection(r.connection);
  } catch (e) {
    closePopup();
    setBusy(go, false);
    fail(e, showRedirect);
  }
}
function openPopup(url) {
  try {
    if (S.popup && !S.popup.closed) S.popup.location.href = url;
    else S.popup = window.open(url, 'puente-redirect', 'popup,width=480,height=720');
  } catch { S.popup = null; }
  return !!S.popup && !S.popup.closed;
}
function closePopup() { try { S.popup?.close(); } catch { /* ignore */ } S.popup = null; }
function showWaiting() {
  const url = S.authUrl;
  const blocked = url && !(S.popup && !S.popup.closed);
  render('redirect', { back: () => { stopWatch(); closePopup(); showRedirect(); } }, (m) => {
    const links = [];
    if (url) {
      links.push(h('a', { href: url, class: 'link', 'data-action': 'reopen-redirect', target: 'puente-redirect', onclick: (e) => { e.preventDefault(); openPopup(url); } },
        h('span', { text: t('reopen', { inst: instName() }) }), icon('ext')));
      if (blocked) links.push(h('p', { class: 'notice' }, icon('alert'), h('span', null, t('blocked') + ' ',
        h('a', { href: url, target: '_blank', rel: 'noopener', class: 'link', text: t('openTab', { inst: instName() }) }))));
    }
    m.append(h('div', { class: 'body center-text' }, h('div', { class: 'ring' }, spinner(true), logo(S.inst)),
      h('h1', { text: t('waitT', { inst: instName() }) }), para(t('waitB', { inst: instName() })), links));
  });
}

// connection watch
function startConnection(conn) {
  S.challenge = null; S.answered = null;
  handleConn(conn);
  if (!FINAL.has(short(conn.status, 'CONNECTION_STATUS_'))) watch(conn.id);
}
// After an error screen: forget what is on screen so the first event re-renders it.
function rewatch() { S.challenge = null; S.authUrl = null; watch(S.conn.id); }
function stopWatch() { if (S.watch) { S.watch.stopped = true; S.watch.ac.abort(); S.watch = null; } }
function watch(id) {
  stopWatch();
  const w = { ac: new AbortController(), stopped: false };
  S.watch = w;
  (async () => {
    let delay = 500;
    while (!w.stopped) {
      let final = false;
      try {
        const res = await fetch('/v1/connections/' + encodeURIComponent(id) + '/events', {
          headers: { Authorization: 'Bearer ' + S.session.session_token }, signal: w.ac.signal, cache: 'no-store', credentials: 'omit',
        });
        if (!res.ok) { let b = null; try { b = await res.json(); } catch { /* empty */ } throw new ApiError(res.status, b); }
        const reader = res.body.getReader();
        const dec = new TextDecoder();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += dec.decode(value, { stream: true });
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (line && onLine(line, w)) final = true;
            delay = 500;
          }
        }
        if (buf.trim() && onLine(buf.trim(), w)) final = true;
      } catch (e) {
        if (w.stopped || e.name === 'AbortError') return;
        if (e instanceof ApiError && e.status >= 400 && e.status < 500 && ![408, 429].includes(e.status)) { w.stopped = true; return fail(e, rewatch); }
      }
      if (final || w.stopped) return;
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  })();
}
function onLine(line, w) {
  let msg;
  try { msg = JSON.parse(line); } catch { return false; }
  if (w.stopped) return true;
  if (msg.error) {
    if ([1, 4, 10, 14].includes(msg.error.code)) return false;
    w.stopped = true;
    fail(new ApiError(500, msg.error), rewatch);
    return true;
  }
  const c = msg.result?.connection;
  if (!c) return false;
  handleConn(c);
  return FINAL.has(short(c.status, 'CONNECTION_STATUS_'));
}
function handleConn(c) {
  if (S.exited) return;
  const old = S.conn;
  // A late reply (e.g. from submitMfa) must not step back over a newer state from the stream.
  if (old && old.id === c.id && (FINAL.has(short(old.status, 'CONNECTION_STATUS_')) || Date.parse(c.update_time) < Date.parse(old.update_time))) return;
  S.conn = c;
  const st = short(c.status, 'CONNECTION_STATUS_');
  if (S.sawRedirect && st !== 'WAITING_REDIRECT') closePopup();
  if (RUNNING.has(st)) {
    if (S.redirectFlow && !S.sawRedirect) return;
    return showProgress(c);
  }
  if (st === 'WAITING_MFA') {
    const ch = c.mfa;
    if (!ch) return showProgress(c);
    if (S.challenge?.id === ch.id) return;
    const retry = !!S.answered && S.answered === fieldKey(ch);
    S.challenge = ch;
    showMfa(ch, retry);
    event('MFA_REQUIRED', { mfa_type: mfaKind(ch) });
    return;
  }
  if (st === 'WAITING_REDIRECT') {
    const first = !S.sawRedirect;
    S.sawRedirect = true;
    if (c.authorization_url && c.authorization_url !== S.authUrl) {
      S.authUrl = c.authorization_url;
      openPopup(S.authUrl);
      showWaiting();
      if (first) event('OPEN_REDIRECT');
    }
    return;
  }
  stopWatch();
  if (st === 'SUCCEEDED') { S.succeeded = true; S.lastError = null; return showSuccess(); }
  const reason = short(c.reason, 'FAILURE_REASON_');
  if (reason === 'INVALID_CREDENTIALS' && !S.redirectFlow) {
    showCredentials(t('badCreds'));
    reportError('INVALID_CREDENTIALS', t('badCreds'));
    return;
  }
  showFailure(reason);
}
// The timeline's messages are the upstream's, in English: the user reads the stage in their language.
function lastMessage(c) {
  return t(short(c.status, 'CONNECTION_STATUS_') === 'RUNNING' ? 'progRun' : 'progStart') + ' ' + t('progB');
}
function showProgress(c) {
  if (S.screen === 'progress' && S.progressEl) { S.progressEl.textContent = lastMessage(c); return; }
  render('progress', {}, (m) => {
    const live = h('p', { class: 'sub', 'aria-live': 'polite', 'data-role': 'status', text: lastMessage(c) });
    m.append(h('div', { class: 'body center-text' }, h('div', { class: 'ring' }, spinner(true), logo(S.inst)),
      h('h1', { text: t('progT', { inst: instName() }) }), live));
    S.progressEl = live;
  });
}

// MFA
const OPTIONS = 'CHALLENGE_FIELD_TYPE_OPTIONS';
function fieldKey(ch) { return (ch.fields || []).map((f) => f.name).sort().join('|'); }
function mfaKind(ch) {
  const f = ch.fields || [];
  if (ch.purpose === 'CHALLENGE_PURPOSE_ACCOUNT_SELECTION') return 'accounts';
  if (f.some((x) => x.type === OPTIONS && (x.options || []).some((o) => o.image))) return 'images';
  if (f.some((x) => x.type === OPTIONS)) return 'options';
  if (ch.image) return 'captcha';
  if (f.some((x) => x.type === 'CHALLENGE_FIELD_TYPE_PASSWORD')) return 'password';
  return 'code';
}
function fmtLeft(ms) { const s = Math.max(0, Math.ceil(ms / 1000)); return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0'); }
function showMfa(ch, retry) {
  const kind = mfaKind(ch);
  const controls = [];
  render('mfa', {}, (m) => {
    const errBox = h('div', { class: 'form-error', role: 'alert' });
    if (retry) errBox.append(icon('alert'), h('span', { text: t('mfaRetry') }));
    const form = h('form', { novalidate: true, class: 'body form' },
      h('div', { class: 'head' }, h('div', { class: 'inst-head' }, logo(S.inst), h('span', { text: instName() })),
        h('h1', { text: t(kind) }), para(kind === 'accounts' ? t('accB', { app: appName(false) }) : t('mfaB', { inst: instName() }))),
      errBox,
      ch.image ? h('img', { class: 'challenge-img', src: 'data:image/png;base64,' + ch.image, alt: t('chImg', { inst: instName() }) }) : null);
    if (kind === 'accounts') {
      const boxes = (ch.fields || []).map((f, i) => {
        const id = 'mfa-' + f.name;
        const cb = h('input', { type: 'checkbox', id, name: f.name, checked: true });
        controls.push([f, cb]);
        return h('div', { class: 'check-row' }, cb, h('label', { for: id, text: f.label || ('#' + (i + 1)) }));
      });
      form.append(h('fieldset', { class: 'group' }, h('legend', { class: 'section', text: t('accLegend') }), boxes));
    } else {
      for (const f of ch.fields || []) { const r = mfaField(f); controls.push([f, r.input]); form.append(r.wrap); }
    }
    const deadline = h('p', { class: 'deadline', 'data-role': 'deadline' });
    const submit = btn(t('cont'), 'submit');
    form.append(actions(deadline, submit));
    m.append(form);
    if (ch.expire_time) {
      const end = new Date(ch.expire_time).getTime();
      const tick = () => {
        const left = end - Date.now();
        if (left <= 0) { deadline.textContent = t('expiredMfa'); deadline.classList.add('late'); clearTimers(); return; }
        deadline.textContent = t('expiresIn', { t: fmtLeft(left) });
      };
      tick();
      if (end > Date.now()) S.timers.push(setInterval(tick, 1000));
    }
    form.addEventListener('submit', (e) => { e.preventDefault(); submitMfa(ch, kind, controls, submit, errBox); });
  });
}
function mfaField(f) {
  const id = 'mfa-' + f.name;
  if (f.type === OPTIONS) {
    const imgs = (f.options || []).some((o) => o.image);
    const fs = h('fieldset', { class: 'group' + (imgs ? ' tiles' : ''), id, 'data-name': f.name }, h('legend', { class: 'label', text: f.label || f.name }));
    const grid = h('div', { class: imgs ? 'tile-grid' : 'opt-list' });
    (f.options || []).forEach((o, i) => {
      const oid = id + '-' + i;
      const r = h('input', { type: 'radio', name: f.name, value: o.value, id: oid, class: imgs ? 'sr-only' : null });
      const lab = imgs && o.image
        ? h('label', { for: oid, class: 'tile' }, h('img', { src: 'data:image/png;base64,' + o.image, alt: o.label || o.value }))
        : h('label', { for: oid, class: imgs ? 'tile tile-text' : null, text: o.label || o.value });
      grid.append(h('div', { class: imgs ? 'tile-wrap' : 'check-row' }, r, lab));
    });
    fs.append(grid);
    const wrap = h('div', { class: 'field' }, fs);
    return { wrap, input: fs };
  }
  const pwd = f.type === 'CHALLENGE_FIELD_TYPE_PASSWORD';
  const isCode = /code|c[oó]digo|otp|token|sms|pin|clave din/i.test(f.name + ' ' + (f.label || '')) && !/captcha/i.test(f.name);
  const input = h('input', {
    id, name: f.name, class: 'input' + (isCode ? ' input-code' : ''), type: pwd ? 'password' : 'text', 'aria-required': 'true', spellcheck: 'false',
    autocomplete: isCode ? 'one-time-code' : 'off', inputmode: isCode && !pwd ? 'numeric' : null, autocapitalize: /captcha/i.test(f.name) ? 'characters' : 'none',
  });
  return { wrap: h('div', { class: 'field' }, h('label', { for: id, text: f.label || f.name }), input), input };
}
async function submitMfa(ch, kind, controls, submit, errBox) {
  if (submit.disabled) return;
  const answers = {};
  let first = null;
  for (const [f, el] of controls) {
    if (kind === 'accounts') {
      const opts = (f.options || []).map((o) => o.value);
      const share = opts.find((v) => /share/i.test(v)) || 'share';
      const skip = opts.find((v) => /skip/i.test(v)) || 'skip';
      answers[f.name] = el.checked ? share : skip;
      continue;
    }
    const v = f.type === OPTIONS ? (el.querySelector('input:checked')?.value || '') : el.value;
    const target = f.type === OPTIONS ? el.querySelector('input') : el;
    if (!v.trim()) {
      if (f.type === OPTIONS) { el.querySelector('.field-error')?.remove(); el.append(h('p', { class: 'field-error', id: el.id + '-error' }, icon('alert'), h('span', { text: t('required') }))); el.setAttribute('aria-describedby', el.id + '-error'); }
      else setFieldError(el, t('required'));
      if (!first) first = target;
    } else {
      if (f.type === OPTIONS) { el.querySelector('.field-error')?.remove(); el.removeAttribute('aria-describedby'); } else setFieldError(el, null);
      answers[f.name] = v;
    }
  }
  if (first) { first.focus(); return; }
  errBox.replaceChildren();
  setBusy(submit, true);
  S.answered = fieldKey(ch);
  event('SUBMIT_MFA', { mfa_type: kind });
  try {
    const r = await api('POST', '/v1/connections/' + encodeURIComponent(S.conn.id) + ':submitMfa', { challenge_id: ch.id, answers });
    if (r.connection && S.challenge?.id === ch.id) handleConn(r.connection);
  } catch (e) {
    if (S.challenge?.id !== ch.id || S.screen !== 'mfa') return;
    setBusy(submit, false);
    if (e.status === 401) return showExpired();
    errBox.replaceChildren(icon('alert'), h('span', { text: e.status >= 400 && e.status < 500 ? t('mfaErr') : t('errB') }));
    reportError('API_ERROR', e.message);
  }
}

// final screens
function showSuccess() {
  render('success', {}, (m) => {
    const note = h('p', { class: 'sub', 'aria-live': 'polite' });
    const go = btn(t('cont'), 'continue', '', () => {
      if (go.disabled) return;
      go.disabled = true;
      event('HANDOFF');
      post({ type: 'success', data: { consentId: S.conn?.consent_id || S.consent?.id || S.session.consent_id || null, connectionId: S.conn?.id, institution: { id: S.inst.id, name: S.inst.name } } });
      if (!S.framed) note.textContent = t('done');
    });
    m.append(h('div', { class: 'body center-text' }, h('span', { class: 'badge-icon ok big' }, icon('check')),
      h('h1', { text: t('okT') }), para(t('okB', { inst: instName(), app: appName(false) })), note), actions(go));
  });
}
function showFailure(reason) {
  const [title, body] = (STR[S.lang][reason] || STR.en[reason] || STR[S.lang].UNKNOWN).map((s) => s.replace(/\{inst\}/g, instName()));
  render('failure', {}, (m) => m.append(
    h('div', { class: 'body center-text' }, h('span', { class: 'badge-icon bad' }, icon('alert')), h('h1', { text: title }), para(body)),
    actions(S.fixed ? null : btn(t('retry'), 'retry', '', goAuth), btn(t('close'), 'exit', S.fixed ? '' : 'btn-secondary', doExit))));
  reportError(reason === 'UNSPECIFIED' ? 'UNKNOWN' : reason, title);
}

// ---------- start ----------
function start() {
  const p = new URLSearchParams(location.hash.slice(1));
  S.token = p.get('link_token');
  S.hostOrigin = validOrigin(p.get('origin'));
  // The link token leaves the address at once; the host's origin stays, so that after a reload
  // the expired screen can still tell the host the user closed it.
  if (location.hash || location.search) history.replaceState(null, '', '/connect' + (S.hostOrigin ? '#origin=' + encodeURIComponent(S.hostOrigin) : ''));
  S.lang = pickLang(null);
  applyLang();
  $('[data-action="back"]').addEventListener('click', () => S.back?.());
  $('[data-action="close"]').addEventListener('click', doExit);
  window.addEventListener('message', onMessage);
  window.addEventListener('pagehide', () => { stopWatch(); closePopup(); });
  if (!S.token) return showExpired();
  exchange();
}
start();
})();
