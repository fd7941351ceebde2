// The bank menu of examples/bank-menu written the way 8x8 users commonly
// write webhook servers: C1 with Express, C2 with Node's plain http module.
// Same decisions, same validation rules checked, byte-identical replies.
//   node bank.js express|http PORT
// With BALANCE_URL set (and BALANCE_API_KEY), the balance comes from that
// backend with Node's fetch, as examples/bank-menu does with `balance_url`.
'use strict';

const VOICE = 'en-US-ZiraRUS';
const MAX_TRIES = 3;
const WELCOME = 'Welcome to Example Bank.';
const MENU = 'For your account balance, press 1. To speak to an agent, press 2. To hear these options again, press 3. To end the call, press 0.';
const NOT_VALID_CHOICE = 'Sorry, that is not a valid choice.';
const ACCOUNT_PROMPT = 'Please enter your account number, 4 to 8 digits, followed by the hash key.';
const NOT_VALID_ACCOUNT = 'Sorry, that is not a valid account number.';
const GOODBYE = 'Thank you for calling Example Bank. Goodbye.';
const TOO_MANY_TRIES = 'Sorry, we could not understand your choice. Goodbye.';
const CONNECTING = 'Please hold while we connect you to an agent.';
const AGENT = '+6560002222';
const CALLER_ID = '+6561110000';
const NO_BALANCE = 'Sorry, we cannot reach your account right now. Please try again later.';
const BALANCE_URL = process.env.BALANCE_URL;
const BALANCE_API_KEY = process.env.BALANCE_API_KEY;

const calls = new Map();

const say = (text) => ({ action: 'say', params: { text, voiceProfile: VOICE } });
const capture = (prompt, min, max, hash, overall) => ({
  action: 'sayAndCapture',
  params: {
    promptMessage: prompt, voiceProfile: VOICE, minDigits: min, maxDigits: max,
    digitTimeout: 5000, overallTimeout: overall, completeOnHash: hash, noOfTries: 1,
  },
});
const withPreamble = (preamble, text) => (preamble ? `${preamble} ${text}` : text);
const menu = (attempt, preamble) => ({ clientActionId: `main-${attempt}`, callflow: [capture(withPreamble(preamble, MENU), 1, 1, false, 10000)] });
const askAccount = (attempt, preamble) => ({ clientActionId: `account-${attempt}`, callflow: [capture(withPreamble(preamble, ACCOUNT_PROMPT), 4, 8, true, 20000)] });
const goodbye = (text) => ({ callflow: [say(text), { action: 'hangup' }] });
const isAccount = (d) => /^[0-9]{4,8}$/.test(d);

function derivedCents(number) {
  let hash = 0xcbf29ce484222325n;
  for (const b of Buffer.from(number)) {
    hash = ((hash ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return hash % 100000000n;
}

// The backend's `{"cents": N}`, fetched as examples/bank-menu does (2 s budget).
async function fetchedCents(number) {
  const headers = BALANCE_API_KEY ? { authorization: `Bearer ${BALANCE_API_KEY}` } : {};
  const response = await fetch(`${BALANCE_URL}?account=${number}`, { headers, signal: AbortSignal.timeout(2000) });
  if (!response.ok) throw new Error(`status ${response.status}`);
  const body = await response.json();
  return BigInt(body.cents);
}

async function balance(number) {
  let text;
  try {
    const cents = BALANCE_URL ? await fetchedCents(number) : derivedCents(number);
    text = `The balance of the account ending in ${number.slice(-4)} is ${cents / 100n} dollars and ${cents % 100n} cents.`;
  } catch (e) {
    text = NO_BALANCE;
  }
  return { clientActionId: 'main-1', callflow: [say(text), capture(MENU, 1, 1, false, 10000)] };
}

function attemptOf(id, prefix) {
  if (typeof id !== 'string' || !id.startsWith(prefix)) return null;
  const rest = id.slice(prefix.length);
  if (!/^[0-9]+$/.test(rest)) return null;
  const n = Number(rest);
  return n >= 1 && n <= MAX_TRIES ? n : null;
}

async function decide(p, state) {
  let dtmf = null;
  if (typeof p.eventData === 'string') dtmf = p.eventData;
  else if (p.eventData && p.eventData.dtmf != null) dtmf = String(p.eventData.dtmf);
  else if (p.dtmf != null) dtmf = String(p.dtmf);
  const digits = dtmf ? dtmf.replace(/#+$/, '') || null : null;
  const id = p.clientActionId;
  let n;
  if ((n = attemptOf(id, 'main-')) !== null) {
    if (digits === '1') return state.account && isAccount(state.account) ? balance(state.account) : askAccount(1, '');
    if (digits === '2') return { clientActionId: 'transfer', callflow: [say(CONNECTING), { action: 'makeCall', params: { source: CALLER_ID, destination: AGENT } }] };
    if (digits === '3') return menu(1, '');
    if (digits === '0') return goodbye(GOODBYE);
    return n >= MAX_TRIES ? goodbye(TOO_MANY_TRIES) : menu(n + 1, NOT_VALID_CHOICE);
  }
  if ((n = attemptOf(id, 'account-')) !== null) {
    if (digits && isAccount(digits)) { state.account = digits; return balance(digits); }
    return n >= MAX_TRIES ? goodbye(TOO_MANY_TRIES) : askAccount(n + 1, NOT_VALID_ACCOUNT);
  }
  if (id === 'transfer') return goodbye(GOODBYE);
  return menu(1, WELCOME);
}

// The same reply rules ivr-host checks (the subset this menu can break).
function valid(reply) {
  const flow = reply.callflow;
  if (!Array.isArray(flow) || flow.length < 1 || flow.length > 32) return false;
  return flow.every((a, i) => {
    if ((a.action === 'hangup' || a.action === 'sayAndCapture') && i !== flow.length - 1) return false;
    const text = a.params && (a.params.text || a.params.promptMessage);
    return !text || (text.length <= 3000 && text.trim().length > 0);
  });
}

async function answer(body) {
  let event;
  try { event = JSON.parse(body); } catch (e) { return [400, JSON.stringify({ error: 'invalid webhook', detail: 'body is not valid JSON' })]; }
  if (!event || typeof event !== 'object' || Array.isArray(event)) return [400, JSON.stringify({ error: 'invalid webhook', detail: 'body must be a JSON object' })];
  if (event.eventType !== 'CALL_ACTION') return [200, '{}'];
  const p = event.payload;
  if (!p || typeof p.sessionId !== 'string' || !p.sessionId) return [400, JSON.stringify({ error: 'invalid webhook', detail: 'payload.sessionId is missing' })];
  let state = calls.get(p.sessionId);
  if (!state) { state = {}; calls.set(p.sessionId, state); }
  const reply = await decide(p, state);
  if (!valid(reply)) return [500, '{}'];
  return [200, JSON.stringify(reply)];
}

const [kind, port] = [process.argv[2], Number(process.argv[3] || 0)];
const ready = (server) => console.log(`${kind} listening webhooks=http://127.0.0.1:${server.address().port}`);
if (kind === 'express') {
  const express = require('express');
  const app = express();
  app.use(express.text({ type: '*/*', limit: '64kb' }));
  app.post('/webhooks/vca', async (req, res) => {
    const [status, body] = await answer(req.body);
    res.status(status).type('application/json').send(body);
  });
  const server = app.listen(port, '127.0.0.1', () => ready(server));
} else {
  const http = require('http');
  const server = http.createServer((req, res) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => { size += c.length; if (size <= 65536) chunks.push(c); });
    req.on('end', async () => {
      const [status, body] = size > 65536 ? [413, '{}'] : await answer(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(port, '127.0.0.1', () => ready(server));
}
