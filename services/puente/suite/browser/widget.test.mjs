// The Connect widget end to end in headless Chromium (Debian's), through the demo integrator's
// page, against a real suite. Started by the Go test TestWidgetInABrowser, which brings up the
// suite, the demo page and a foreign origin, and passes their URLs in the environment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

const PUENTE = need('PUENTE_URL');
const DEMO = need('DEMO_URL');
const FOREIGN = need('FOREIGN_URL');
const ARTIFACTS = need('ARTIFACTS_DIR');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
mkdirSync(ARTIFACTS, { recursive: true });

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this through the Go test TestWidgetInABrowser`);
  return v;
}

let browser;
const figures = { firstPaintMs: [], interactiveListMs: [], baselineFirstPaintMs: [] };
const results = { successes: [] };

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  await browser?.close();
  const median = (xs) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);
  const summary = {
    samples: figures.firstPaintMs.length,
    firstPaintMedianMs: median(figures.firstPaintMs),
    interactiveListMedianMs: median(figures.interactiveListMs),
    baselineFirstPaintMedianMs: median(figures.baselineFirstPaintMs),
    ...figures,
  };
  const base = summary.baselineFirstPaintMedianMs;
  summary.ratios = {
    firstPaintToBaseline: base ? +(summary.firstPaintMedianMs / base).toFixed(2) : null,
    interactiveListToBaseline: base ? +(summary.interactiveListMedianMs / base).toFixed(2) : null,
  };
  writeFileSync(join(ARTIFACTS, 'figures.json'), JSON.stringify(summary, null, 2));
  writeFileSync(join(ARTIFACTS, 'results.json'), JSON.stringify(results, null, 2));
});

// open starts a fresh browser context on the demo page with the widget open, in language.
async function open(t, { language = 'en', country = 'CL', locale = 'en-US' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 }, locale });
  const page = await context.newPage();
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  t.after(async () => {
    // The last screen, whatever happened: the first thing to look at when a test fails.
    const frame = page.locator('iframe[title="Puente Connect"]');
    if (await frame.count()) await frame.screenshot({ path: join(ARTIFACTS, `${slugOf(t.name)}-last.png`) }).catch(() => {});
    await context.close();
    assert.deepEqual(problems, [], 'no script error and no CSP violation');
  });
  await page.goto(DEMO + '/');
  await page.selectOption('#language', language);
  await page.selectOption('#country', country);
  await page.click('#link');
  const widget = page.frameLocator('iframe[title="Puente Connect"]');
  await widget.locator('[data-screen="institutions"]').waitFor();
  await widget.locator('button.institution').first().waitFor();
  await measure(page);
  return { page, widget, shots: shooter(page, t.name) };
}

// measure reads the widget frame's first paint and the time its institution list became
// interactive, both from the frame's navigation start.
async function measure(page) {
  const frame = page.frames().find((f) => f.url().startsWith(PUENTE + '/connect'));
  const m = await frame.evaluate(async () => {
    for (let i = 0; i < 50 && !performance.getEntriesByName('puente:institutions-interactive').length; i++) {
      await new Promise((r) => requestAnimationFrame(r));
    }
    const fcp = performance.getEntriesByName('first-contentful-paint')[0];
    const ready = performance.getEntriesByName('puente:institutions-interactive')[0];
    return { fcp: fcp?.startTime, ready: ready?.startTime };
  });
  assert.ok(m.ready !== undefined, 'the widget marks when its institution list is interactive');
  if (m.fcp !== undefined) figures.firstPaintMs.push(m.fcp);
  figures.interactiveListMs.push(m.ready);
}

const slugOf = (name) => name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();

function shooter(page, name) {
  let n = 0;
  const slug = slugOf(name);
  return async (label) => {
    n++;
    const el = page.locator('iframe[title="Puente Connect"]');
    await el.screenshot({ path: join(ARTIFACTS, `${slug}-${String(n).padStart(2, '0')}-${label}.png`) });
  };
}

// axe runs axe-core's WCAG 2 A/AA rules in the widget frame and fails on any violation.
async function axe(page, screen) {
  const frame = page.frames().find((f) => f.url().startsWith(PUENTE + '/connect'));
  await frame.evaluate(axeSource);
  const violations = await frame.evaluate(async () => {
    const r = await window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa'] } });
    return r.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.map((n) => n.target.join(' ')).join(', ')})`);
  });
  assert.deepEqual(violations, [], `accessibility of the ${screen} screen`);
}

const messages = (page) => page.evaluate(() => window.demoMessages);
const eventNames = async (page) => (await messages(page)).filter((m) => m.kind === 'event').map((m) => m.name);

async function waitForMessage(page, kind, name) {
  await page.waitForFunction(([k, n]) => window.demoMessages.some((m) => m.kind === k && (!n || m.name === n)), [kind, name]);
}

// noSecrets checks that nothing the host page received holds a credential or a token.
async function noSecrets(page, ...secrets) {
  const all = JSON.stringify(await messages(page));
  for (const s of ['pass_good', 'plt_', 'eyJ', ...secrets]) {
    assert.ok(!all.includes(s), `the host page never receives ${s}`);
  }
}

async function pickInstitution(widget, search, name) {
  await widget.locator('#search').fill(search);
  const button = widget.locator('button.institution', { hasText: name });
  await button.first().click();
}

async function credentials(widget, username, password = 'pass_good') {
  await widget.locator('[data-screen="credentials"]').waitFor();
  await widget.locator('#field-username').fill(username);
  await widget.locator('#field-password').fill(password);
  await widget.locator('[data-action="submit"]').click();
}

// logInAtArena picks the Sandbox's plain bank, accepts the consent and logs in as username.
async function logInAtArena(widget, username, password = 'pass_good') {
  await pickInstitution(widget, 'Arena', 'Banco Arena Personas');
  await widget.locator('[data-action="continue"]').click();
  await credentials(widget, username, password);
}

async function finish(page, widget, shots) {
  await widget.locator('[data-screen="success"]').waitFor({ timeout: 20000 });
  await shots('success');
  await axe(page, 'success');
  await widget.locator('[data-action="continue"]').click();
  await waitForMessage(page, 'success');
  const success = (await messages(page)).find((m) => m.kind === 'success').payload;
  assert.match(success.consentId, /^cns_/);
  assert.match(success.connectionId, /^con_/);
  assert.match(success.institution.id, /^ins_/);
  assert.ok(success.institution.name);
  assert.equal(await page.locator('iframe[title="Puente Connect"]').count(), 0, 'the widget is gone after success');
  results.successes.push(success);
  return success;
}

test('a user links a bank with a password, in Spanish, after fixing their input', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'es' });
  assert.equal(await widget.locator('html').getAttribute('lang'), 'es');
  await shots('institutions');
  await axe(page, 'institutions');

  // A DOWN institution says so before anyone types a password.
  await pickInstitution(widget, 'Caído', 'Banco Caído');
  await widget.locator('[data-screen="unavailable"]').waitFor();
  await shots('unavailable');
  assert.equal(await widget.locator('input[type="password"]').count(), 0);
  await widget.locator('[data-action="back"]').first().click();

  await pickInstitution(widget, 'Arena', 'Banco Arena Personas');
  await widget.locator('[data-screen="consent"]').waitFor();
  await shots('consent');
  await axe(page, 'consent');
  await widget.locator('[data-action="continue"]').click();

  await widget.locator('[data-screen="credentials"]').waitFor();
  assert.equal(await widget.locator('#field-password').getAttribute('type'), 'password', 'the password is masked');
  await widget.locator('[data-action="submit"]').click();
  await widget.locator('#field-username-error').waitFor();
  assert.equal(await widget.locator('#field-username').getAttribute('aria-invalid'), 'true');
  await widget.locator('#field-username').fill('x');
  await widget.locator('#field-password').fill('pass_good');
  await widget.locator('[data-action="submit"]').click();
  await widget.locator('#field-username-error').waitFor();
  await shots('credentials-errors');
  assert.ok(!(await eventNames(page)).includes('SUBMIT_CREDENTIALS'), 'nothing is sent while a field is wrong');

  await widget.locator('#field-username').fill('user_good');
  await shots('credentials');
  await axe(page, 'credentials');
  await widget.locator('[data-action="submit"]').click();
  await finish(page, widget, shots);

  const names = await eventNames(page);
  for (const want of ['OPEN', 'INSTITUTION_SELECTED', 'SUBMIT_CREDENTIALS']) assert.ok(names.includes(want), `${want} in ${names}`);
  assert.equal(names[0], 'OPEN');
  const selected = (await messages(page)).filter((m) => m.name === 'INSTITUTION_SELECTED').map((m) => m.payload.institution_name);
  assert.deepEqual(selected, ['Banco Caído', 'Banco Arena Personas']);
  await noSecrets(page);
});

test('an OTP challenge, a wrong code then the right one, with its deadline', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'en' });
  await logInAtArena(widget, 'user_otp');
  await widget.locator('[data-screen="mfa"]').waitFor();
  await waitForMessage(page, 'event', 'MFA_REQUIRED');
  assert.match(await widget.locator('[data-role="deadline"]').innerText(), /\d+:\d\d/);
  await shots('mfa-code');
  await axe(page, 'mfa');
  const first = await widget.locator('[data-screen="mfa"] input[name="otp"]').getAttribute('id');

  await widget.locator('input[name="otp"]').fill('000000');
  await widget.locator('[data-action="submit"]').click();
  // The sandbox asks again, as a new round.
  await page.waitForFunction(() => window.demoMessages.filter((m) => m.name === 'MFA_REQUIRED').length === 2);
  await widget.locator('input[name="otp"]').waitFor();
  await shots('mfa-code-again');
  await widget.locator('input[name="otp"]').fill('123456');
  await widget.locator('[data-action="submit"]').click();
  await finish(page, widget, shots);
  const mfa = (await messages(page)).filter((m) => m.name === 'MFA_REQUIRED');
  assert.equal(mfa[0].payload.mfa_type, 'code');
  assert.ok(first);
  await noSecrets(page, '123456');
});

test('an image-choice challenge, in Portuguese', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'pt-BR' });
  assert.equal((await widget.locator('html').getAttribute('lang')).slice(0, 2), 'pt');
  await logInAtArena(widget, 'user_image');
  await widget.locator('[data-screen="mfa"]').waitFor();
  await widget.locator('img[alt="The green square"]').waitFor();
  await shots('mfa-images');
  await axe(page, 'mfa images');
  await widget.locator('img[alt="The green square"]').click();
  assert.ok(await widget.locator('input[type="radio"][value="img_3"]').isChecked(), 'clicking the image picks it');
  await widget.locator('[data-action="submit"]').click();
  await finish(page, widget, shots);
  const mfa = (await messages(page)).find((m) => m.name === 'MFA_REQUIRED');
  assert.equal(mfa.payload.mfa_type, 'images');
});

test('a captcha challenge, in French', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'fr' });
  assert.equal(await widget.locator('html').getAttribute('lang'), 'fr');
  await logInAtArena(widget, 'user_captcha');
  await widget.locator('[data-screen="mfa"] img[src^="data:image/png;base64,"]').first().waitFor();
  await shots('mfa-captcha');
  await widget.locator('input[name="captcha"]').fill('puente');
  await widget.locator('[data-action="submit"]').click();
  await finish(page, widget, shots);
});

test('the user picks the accounts to share when they arrive disabled', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'en' });
  await logInAtArena(widget, 'user_accounts');
  await widget.locator('[data-screen="mfa"]').waitFor();
  const boxes = widget.locator('[data-screen="mfa"] input[type="checkbox"]');
  await boxes.first().waitFor();
  assert.equal(await boxes.count(), 2, 'one checkbox per account');
  assert.ok(await boxes.nth(0).isChecked() && await boxes.nth(1).isChecked(), 'every account is offered checked');
  await boxes.nth(1).uncheck();
  await shots('mfa-accounts');
  await axe(page, 'accounts');
  await widget.locator('[data-action="submit"]').click();
  const success = await finish(page, widget, shots);
  results.accountChoice = success;
  const mfa = (await messages(page)).find((m) => m.name === 'MFA_REQUIRED');
  assert.equal(mfa.payload.mfa_type, 'accounts');
});

test('a form with a select, in Mexico', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'es', country: 'MX' });
  await pickInstitution(widget, 'Tesoro', 'Banco Tesoro');
  await widget.locator('[data-action="continue"]').click();
  await widget.locator('[data-screen="credentials"]').waitFor();
  const select = widget.locator('select#field-account_type');
  assert.deepEqual((await select.locator('option').allTextContents()).slice(1), ['Personal', 'Empresa'], 'the options of the field spec');
  await widget.locator('#field-username').fill('user_good');
  await widget.locator('#field-password').fill('pass_good');
  await widget.locator('[data-action="submit"]').click();
  await widget.locator('#field-account_type-error').waitFor();
  await shots('select-required');
  await select.selectOption('02');
  await widget.locator('[data-action="submit"]').click();
  await finish(page, widget, shots);
});

test('a wrong password is said next to the form, and closing reports it', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'en' });
  await logInAtArena(widget, 'user_badpass', 'wrong-password');
  await widget.locator('.form-error').waitFor({ timeout: 20000 });
  await widget.locator('[data-screen="credentials"]').waitFor();
  await shots('wrong-password');
  await axe(page, 'credentials with an error');
  await waitForMessage(page, 'event', 'ERROR');
  const err = (await messages(page)).find((m) => m.name === 'ERROR');
  assert.equal(err.payload.error_code, 'INVALID_CREDENTIALS');

  await widget.locator('[data-action="close"]').click();
  await waitForMessage(page, 'exit');
  const names = await eventNames(page);
  assert.equal(names.at(-1), 'EXIT');
  const exit = (await messages(page)).find((m) => m.kind === 'exit').payload;
  assert.equal(exit.error.code, 'INVALID_CREDENTIALS');
  assert.equal(await page.locator('iframe[title="Puente Connect"]').count(), 0);
  await noSecrets(page, 'wrong-password');
});

test('a redirect institution opens the bank in a popup and resumes when the user is back', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'es' });
  await pickInstitution(widget, 'Cordillera', 'Banco Cordillera');
  await widget.locator('[data-action="continue"]').click();
  await widget.locator('[data-screen="redirect"]').waitFor();
  await shots('redirect');
  await axe(page, 'redirect');
  const [popup] = await Promise.all([
    page.waitForEvent('popup'),
    widget.locator('[data-action="open-redirect"]').click(),
  ]);
  await popup.waitForURL(/\/connect\/sandbox\/authorize\?/);
  await popup.locator('[data-action="approve"]').waitFor();
  await popup.screenshot({ path: join(ARTIFACTS, 'redirect-bank-page.png') });
  await shots('redirect-waiting');
  await popup.locator('[data-action="approve"]').click();
  await finish(page, widget, shots);
  const names = await eventNames(page);
  assert.ok(names.includes('SUBMIT_CREDENTIALS') || names.includes('OPEN_REDIRECT'), names.join());
  await noSecrets(page);
});

test('a link token works once: a reload or a second use shows the expired screen', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'en' });
  const frame = page.frames().find((f) => f.url().startsWith(PUENTE + '/connect'));
  assert.ok(!frame.url().includes('link_token'), 'the link token is gone from the address');
  await frame.evaluate(() => location.reload());
  await widget.locator('[data-screen="expired"]').waitFor();
  await shots('reloaded');
  // The host still hears that the user closed it.
  await widget.locator('[data-action="close"]').click();
  await waitForMessage(page, 'exit');
  assert.equal(await page.locator('iframe[title="Puente Connect"]').count(), 0);
  await page.click('#reuse');
  const again = page.frameLocator('iframe[title="Puente Connect"]');
  await again.locator('[data-screen="expired"]').waitFor();
  await shots('expired');
  await axe(page, 'expired');

  // And through the API: the exchange answers once.
  const mint = await fetch(DEMO + '/api/link-token', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
  const { link_token: token } = await mint.json();
  const exchange = () => fetch(PUENTE + '/v1/link-tokens:exchange', {
    method: 'POST', body: JSON.stringify({ link_token: token }), headers: { 'Content-Type': 'application/json' },
  });
  assert.equal((await exchange()).status, 200);
  const second = await exchange();
  assert.ok(second.status >= 400 && second.status < 500, `a second exchange is refused (${second.status})`);
});

test('messages from a foreign origin are ignored, both ways', async (t) => {
  const { page, widget, shots } = await open(t, { language: 'en' });
  // A frame of another origin on the host page (an advert, say) forges the widget's success and
  // exit to the host page, and the host's exit to the widget, with target origin "*". It ends
  // with a marker of its own: messages from one window arrive in order, so once the marker is
  // in, the forgeries were handled.
  await page.evaluate((url) => {
    window.forgerDone = new Promise((resolve) => {
      window.addEventListener('message', (e) => e.data?.source === 'forger' && resolve());
    });
    const f = document.createElement('iframe');
    f.src = url;
    document.body.append(f);
  }, FOREIGN + '/forge');
  await page.evaluate(() => window.forgerDone);
  const kinds = (await messages(page)).map((m) => m.kind);
  assert.ok(!kinds.includes('success') && !kinds.includes('exit'), `no forged callback: ${kinds}`);
  await widget.locator('[data-screen="institutions"]').waitFor();
  assert.equal(await page.locator('iframe[title="Puente Connect"]').count(), 1, 'the widget is still open');

  // The widget framed by a page whose origin the client did not register shows an error and
  // sends that page nothing, even when the page claims to be the registered one.
  for (const claim of ['self', 'demo']) {
    const mint = await fetch(DEMO + '/api/link-token', { method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json' } });
    const { link_token: token } = await mint.json();
    const evil = await page.context().newPage();
    await evil.goto(`${FOREIGN}/frame?token=${encodeURIComponent(token)}&claim=${claim}&puente=${encodeURIComponent(PUENTE)}&demo=${encodeURIComponent(DEMO)}`);
    const framed = evil.frameLocator('iframe');
    await framed.locator('[data-screen="not-allowed"]').waitFor();
    if (claim === 'self') await evil.locator('iframe').screenshot({ path: join(ARTIFACTS, 'foreign-origin-not-allowed.png') });
    assert.equal(await framed.locator('input[type="password"]').count(), 0);
    const received = await evil.evaluate(() => window.received);
    assert.deepEqual(received, [], `a page of another origin receives nothing (claiming ${claim})`);
    await evil.close();
  }
  // The widget ignored the forged exit: it still answers its user, and never said EXIT.
  await pickInstitution(widget, 'Arena', 'Banco Arena Personas');
  await widget.locator('[data-screen="consent"]').waitFor();
  await shots('after-forgery');
  const names = await eventNames(page);
  assert.ok(names.includes('INSTITUTION_SELECTED') && !names.includes('EXIT'), names.join());
});

test('keyboard only: search, pick, consent, log in, finish', async (t) => {
  const { page, widget } = await open(t, { language: 'en' });
  const frame = page.frames().find((f) => f.url().startsWith(PUENTE + '/connect'));
  const tabTo = async (selector) => {
    for (let i = 0; i < 25; i++) {
      if (await frame.evaluate((s) => document.activeElement?.matches(s), selector)) return;
      await page.keyboard.press('Tab');
    }
    assert.fail(`Tab never reaches ${selector}`);
  };
  await tabTo('#search');
  await page.keyboard.type('Arena');
  await widget.locator('button.institution', { hasText: 'Banco Arena Personas' }).first().waitFor();
  await tabTo('button.institution');
  await page.keyboard.press('Enter');
  await widget.locator('[data-screen="consent"]').waitFor();
  await tabTo('[data-action="continue"]');
  await page.keyboard.press('Enter');
  await widget.locator('[data-screen="credentials"]').waitFor();
  await tabTo('#field-username');
  await page.keyboard.type('user_good');
  await tabTo('#field-password');
  await page.keyboard.type('pass_good');
  await page.keyboard.press('Enter');
  await widget.locator('[data-screen="success"]').waitFor({ timeout: 20000 });
  await tabTo('[data-action="continue"]');
  await page.keyboard.press('Enter');
  await waitForMessage(page, 'success');
});

test('baseline: first paint of a minimal page framed the same way', async () => {
  for (let i = 0; i < 5; i++) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
    const page = await context.newPage();
    await page.goto(DEMO + '/');
    await page.evaluate((url) => {
      const f = document.createElement('iframe');
      f.src = url;
      document.body.append(f);
    }, FOREIGN + '/blank');
    const frame = await (await page.waitForSelector('iframe')).contentFrame();
    await frame.waitForLoadState('load');
    const fcp = await frame.evaluate(async () => {
      for (let j = 0; j < 50 && !performance.getEntriesByName('first-contentful-paint').length; j++) {
        await new Promise((r) => requestAnimationFrame(r));
      }
      return performance.getEntriesByName('first-contentful-paint')[0]?.startTime;
    });
    if (fcp !== undefined) figures.baselineFirstPaintMs.push(fcp);
    await context.close();
  }
  assert.ok(figures.baselineFirstPaintMs.length > 0);
});
