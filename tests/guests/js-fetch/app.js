// An IVR app in JavaScript: fetches the URL given as the caller's digits
// with the standard `fetch` (wasi:http underneath) and says what came back.
import { log } from 'ivr:app/log@0.3.0';

const say = (text) => ({
  tag: 'say',
  val: { text, voiceProfile: 'en-US-ZiraRUS' },
});

export async function handleCallAction(event) {
  const url = event.dtmf;
  if (!url) {
    return { clientActionId: 'fetch', actions: [say('Say a URL.')] };
  }
  let text;
  try {
    const response = await fetch(url);
    const body = await response.text();
    text = `status ${response.status} bytes ${body.length}`;
  } catch (err) {
    log('warn', `fetch failed: ${err}`);
    text = `error ${err}`;
  }
  return { clientActionId: 'fetch', actions: [say(text), { tag: 'hangup' }] };
}

export function handleSessionSummary(_summary) {}
