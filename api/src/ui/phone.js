// ブラウザフォン: the agent's nailed-up leg as WebRTC from this page (issue 24). An ES module
// beside the desktop's script (ui/agent.js), which lends it `window.kakeruDesk` (the message
// catalogue, the API with the agent's token, the job) and tells it the push channel's notices and
// the agent's states as `kakeru:*` events.
//
// Signalling: the page's offer goes to POST /agent/phone (before 発信開始, or for an ICE
// restart); the media shard's SDP answer comes back on the push channel (a notice phone_answer,
// or phone_failed with the reason). The shard is ICE-lite: the page's STUN checks find it.
// Media: the microphone (the device chosen) to the shard, the shard's audio to an <audio>;
// digits from the dial pad as RFC 4733 (RTCDTMFSender). The health check (microphone heard,
// round trip and loss from getStats) must pass before the agent may go 待機; a failure is said in
// words (microphone blocked, ICE failed, no audio for 5 s, the path cut) and 再接続 rejoins
// without losing the job (an ICE restart while the leg is up; a new leg and the same job when it
// is down). The health line names the media path's transport (UDP, or TCP: the shard's RFC 6544
// candidate where the network lets no UDP through), for support staff. A leg the shard found down (no datagram for 2 s: the agent is 未確認) is rejoined by
// the page itself after 3 s, the failure said meanwhile.

const desk = window.kakeruDesk;
const $ = (id) => document.getElementById(id);
const t = (k, v) => desk.t(k, v);

/** Seconds of inbound silence before the page says no audio arrives. */
const SILENCE_MS = 5000;
/** A microphone level (RMS, 0..1) that counts as heard. */
const MIC_HEARD = 0.01;
/** When the leg went down (the agent 未確認): the page rejoins by itself after this long (the
 * failure stays said meanwhile), and tries this many times before it waits for 再接続. */
const AUTO_REJOIN_MS = 3000;
const AUTO_REJOIN_TRIES = 10;

const P = {
  on: false, // the caller's phone is the browser phone
  stream: null,
  pc: null,
  sender: null,
  muted: false,
  state: 'off', // off | connecting | on | failed
  error: '',
  errorKey: null, // a failure said in the page's language, whichever it is when drawn
  rejoining: false,
  micHeard: false,
  rttMs: null,
  lossPct: null,
  path: null, // 'UDP' | 'TCP': the selected candidate pair's transport
  lastInbound: { packets: 0, at: 0 }, // of the current peer connection (its counters start at 0)
  silent: false, // no audio from the shard for SILENCE_MS: said in the page's language when drawn
  audio: null, // AudioContext, analysers
  micAnalyser: null,
  farAnalyser: null,
  job: null,
};

function setState(state, error) {
  P.state = state;
  if (error !== undefined) { P.error = error; P.errorKey = null; }
  draw();
  desk.render();
}

function draw() {
  const s = $('phone-state');
  s.dataset.state = P.state;
  s.textContent = t(`phone_${P.state === 'failed' ? 'off' : P.state}`);
  $('phone-error').textContent = P.errorKey ? t(P.errorKey) : P.error || (P.silent ? t('phone_err_silence') : '');
  const parts = [t(P.micHeard ? 'phone_mic_ok' : 'phone_mic_silent')];
  if (P.rttMs !== null) parts.push(t('phone_rtt', { ms: Math.round(P.rttMs) }));
  if (P.lossPct !== null) parts.push(t('phone_loss', { pct: P.lossPct.toFixed(1) }));
  if (P.path) parts.push(t('phone_path', { proto: P.path }));
  $('phone-health').textContent = parts.join(' / ');
  const mute = $('phone-mute');
  mute.setAttribute('aria-pressed', String(P.muted));
}

// ---------------------------------------------------------------------------------- microphone
async function openMic(deviceId) {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) audio.deviceId = { exact: deviceId };
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio });
    if (P.stream) P.stream.getTracks().forEach((x) => x.stop());
    P.stream = stream;
    stream.getAudioTracks().forEach((x) => { x.enabled = !P.muted; });
    meter(stream);
    await listDevices();
    if (P.sender) await P.sender.replaceTrack(stream.getAudioTracks()[0]);
    return true;
  } catch (e) {
    setState('failed', e && e.name === 'NotAllowedError' ? t('phone_err_blocked') : t('phone_err_failed', { why: e.message }));
    return false;
  }
}

async function listDevices() {
  const sel = $('phone-mic');
  const current = P.stream && P.stream.getAudioTracks()[0] && P.stream.getAudioTracks()[0].getSettings().deviceId;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'audioinput');
  sel.replaceChildren(...devices.map((d, i) => {
    const o = document.createElement('option');
    o.value = d.deviceId;
    o.textContent = d.label || `${t('phone_mic')} ${i + 1}`;
    return o;
  }));
  if (current) sel.value = current;
}

function context() {
  if (!P.audio) P.audio = new AudioContext();
  if (P.audio.state === 'suspended') P.audio.resume().catch(() => {});
  return P.audio;
}

function meter(stream) {
  const ctx = context();
  const a = ctx.createAnalyser();
  a.fftSize = 2048;
  ctx.createMediaStreamSource(stream).connect(a);
  P.micAnalyser = a;
}

const rms = (a) => {
  if (!a) return 0;
  const buf = new Float32Array(a.fftSize);
  a.getFloatTimeDomainData(buf);
  let s = 0;
  for (const x of buf) s += x * x;
  return Math.sqrt(s / buf.length);
};

/** The strongest frequency of what the agent hears (Hz), for the health check and the tests. */
function farPeakHz() {
  const a = P.farAnalyser;
  if (!a) return 0;
  const bins = new Float32Array(a.frequencyBinCount);
  a.getFloatFrequencyData(bins);
  let best = 1;
  for (let i = 2; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
  return (best * P.audio.sampleRate) / a.fftSize;
}

// ------------------------------------------------------------------------------------- the leg
function newPeer() {
  if (P.pc) P.pc.close();
  const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
  P.pc = pc;
  P.lastInbound = { packets: 0, at: 0 };
  P.silent = false;
  P.sender = pc.addTrack(P.stream.getAudioTracks()[0], P.stream);
  pc.ontrack = (ev) => {
    const far = ev.streams[0] || new MediaStream([ev.track]);
    $('phone-audio').srcObject = far;
    const ctx = context();
    const a = ctx.createAnalyser();
    a.fftSize = 4096;
    ctx.createMediaStreamSource(far).connect(a);
    P.farAnalyser = a;
  };
  pc.oniceconnectionstatechange = () => {
    if (P.pc !== pc) return;
    const s = pc.iceConnectionState;
    if ((s === 'connected' || s === 'completed') && desk.state() === 'unknown' && P.errorKey) setState('on');
    else if (s === 'connected' || s === 'completed') setState('on', '');
    else if (s === 'failed') setState('failed', t('phone_err_ice'));
    else if (s === 'disconnected') setState('connecting');
  };
  return pc;
}

/** Creates the offer (every host candidate gathered, at most 2 s) and sends it. */
async function offer(restart) {
  const pc = P.pc;
  const o = await pc.createOffer(restart ? { iceRestart: true } : {});
  await pc.setLocalDescription(o);
  await new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const done = () => { if (pc.iceGatheringState === 'complete') resolve(); };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, 2000);
  });
  setState('connecting', '');
  await desk.api('POST', '/agent/phone', { sdp: pc.localDescription.sdp });
}

async function onAnswer(sdp) {
  if (!P.pc || P.pc.signalingState !== 'have-local-offer') return;
  // Tests only (set before the page loads): the shard's UDP candidates dropped, so that the page
  // must reach it over its TCP candidate, as behind a firewall that lets no UDP through.
  if (window.__phoneTcpOnly) sdp = sdp.split('\r\n').filter((l) => !/^a=candidate:\S+ \d+ udp /i.test(l)).join('\r\n');
  try {
    await P.pc.setRemoteDescription({ type: 'answer', sdp });
  } catch (e) {
    setState('failed', t('phone_err_failed', { why: e.message }));
  }
}

/** Before 発信開始: the microphone, the peer, the offer. False (said in words) if it failed. */
async function beforeStart(job) {
  if (!P.on) return true;
  P.job = job;
  if (!P.stream && !(await openMic($('phone-mic').value))) return false;
  newPeer();
  try {
    await offer(false);
    return true;
  } catch (e) {
    setState('failed', t('phone_err_failed', { why: e.message }));
    return false;
  }
}

/** 再接続: an ICE restart while the leg is up; when the leg is down (未確認), a new leg and the
 * same job. */
async function rejoin() {
  P.error = '';
  if (!P.stream && !(await openMic($('phone-mic').value))) return;
  const st = desk.state();
  try {
    if (P.pc && st !== 'unknown' && st !== 'offline') {
      await offer(true);
      return;
    }
    const job = desk.job() || P.job;
    newPeer();
    await offer(false);
    if (job && (st === 'unknown' || st === 'offline')) {
      await desk.api('POST', '/agent/session', { call_job_id: job.id });
      desk.sessionStarted();
    }
  } catch (e) {
    setState('failed', t('phone_err_failed', { why: e.message }));
  }
}

/** The leg went down while the job runs (the agent is 未確認): say so, and rejoin by itself
 * every AUTO_REJOIN_MS until the leg is up again or AUTO_REJOIN_TRIES ran out (then 再接続). */
async function autoRejoin() {
  if (P.rejoining) return;
  P.rejoining = true;
  try {
    for (let i = 0; i < AUTO_REJOIN_TRIES; i++) {
      await new Promise((r) => setTimeout(r, AUTO_REJOIN_MS));
      if (!P.on || P.state === 'on' || desk.state() !== 'unknown') return;
      await rejoin();
      // Still down: the cut said again, unless the rejoin's own failure is the better word.
      if (P.state !== 'on' && !P.error) { P.errorKey = 'phone_err_down'; draw(); }
    }
  } finally {
    P.rejoining = false;
  }
}

// ------------------------------------------------------------------------------ health, silence
async function stats() {
  if (!P.pc || P.state !== 'on') return;
  const r = await P.pc.getStats();
  let inbound = null;
  let pairId = null;
  r.forEach((s) => { if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId; });
  const pair = pairId && r.get(pairId);
  const local = pair && r.get(pair.localCandidateId);
  P.path = local && local.protocol ? local.protocol.toUpperCase() : null;
  r.forEach((s) => {
    if (s.type === 'remote-inbound-rtp' && s.kind === 'audio') {
      if (typeof s.roundTripTime === 'number') P.rttMs = s.roundTripTime * 1000;
      if (typeof s.fractionLost === 'number') P.lossPct = s.fractionLost * 100;
    }
    if (s.type === 'inbound-rtp' && s.kind === 'audio') inbound = s;
    if (s.type === 'candidate-pair' && s.nominated && typeof s.currentRoundTripTime === 'number') P.rttMs = s.currentRoundTripTime * 1000;
  });
  if (inbound) {
    const now = Date.now();
    const lost = inbound.packetsLost || 0;
    const got = inbound.packetsReceived || 0;
    if (P.lossPct === null && got + lost > 0) P.lossPct = (100 * lost) / (got + lost);
    if (got > P.lastInbound.packets) P.lastInbound = { packets: got, at: now };
    P.silent = !!P.lastInbound.at && now - P.lastInbound.at > SILENCE_MS;
  }
}

function tick() {
  const level = P.muted ? 0 : rms(P.micAnalyser);
  $('phone-level').value = Math.min(1, level * 4);
  if (level > MIC_HEARD) P.micHeard = true;
  draw();
}

/** The health check: the leg up, the microphone heard, audio arriving, loss under 5 %. */
function readyAllowed() {
  if (!P.on) return true;
  return P.state === 'on' && P.micHeard && !P.error && !P.silent && (P.lossPct === null || P.lossPct < 5);
}

// -------------------------------------------------------------------------------------- dial pad
function pad() {
  const keys = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
  $('phone-pad').replaceChildren(...keys.map((k) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'plain';
    b.textContent = k;
    b.dataset.digit = k;
    b.setAttribute('aria-label', `${t('phone_pad')} ${k}`);
    b.addEventListener('click', () => digit(k));
    return b;
  }));
}

function digit(k) {
  if (P.sender && P.sender.dtmf && P.state === 'on') P.sender.dtmf.insertDTMF(k, 120, 70);
}

// ------------------------------------------------------------------------------------------ start
async function start() {
  let kind = 'sip';
  try {
    kind = (await desk.api('GET', '/agent/phone')).phone_kind;
  } catch (_) { return; }
  if (kind !== 'browser') return;
  P.on = true;
  $('phone').hidden = false;
  pad();
  draw();
  document.addEventListener('kakeru:notice', (ev) => {
    const d = ev.detail || {};
    if (d.notice === 'phone_answer') onAnswer(d.sdp);
    else if (d.notice === 'phone_failed') setState('failed', t('phone_err_failed', { why: d.error }));
  });
  document.addEventListener('kakeru:state', (ev) => {
    const s = ev.detail && ev.detail.state;
    if (s === 'unknown' && P.state !== 'off') {
      // The leg is down (the media path was cut): the agent is 未確認 until the page rejoins.
      setState('failed');
      P.errorKey = 'phone_err_down';
      draw();
      autoRejoin();
    } else if (s === 'offline' && P.state === 'on') {
      setState('off');
    } else if (P.errorKey && P.state === 'on' && s !== 'unknown') {
      P.errorKey = null;
      draw();
    }
  });
  document.addEventListener('kakeru:lang', () => { pad(); draw(); });
  document.addEventListener('keydown', (ev) => {
    if (P.state === 'on' && !ev.altKey && !ev.ctrlKey && /^[0-9*#]$/.test(ev.key) && ev.target === document.body) digit(ev.key);
  });
  $('phone-mic').addEventListener('change', () => openMic($('phone-mic').value));
  $('phone-mute').addEventListener('click', () => {
    P.muted = !P.muted;
    if (P.stream) P.stream.getAudioTracks().forEach((x) => { x.enabled = !P.muted; });
    draw();
  });
  $('phone-rejoin').addEventListener('click', rejoin);
  // The microphone at once: its permission and level are part of the health check.
  await openMic();
  setInterval(tick, 100);
  setInterval(() => { stats().catch(() => {}); }, 1000);
}

window.kakeruPhone = { beforeStart, readyAllowed, rejoin, rejoinsItself: () => P.on };
// For the tests: what the agent hears and how the check stands.
window.__phone = {
  peakHz: farPeakHz, state: () => P.state, error: () => $('phone-error').textContent, path: () => P.path,
  dtmf: () => ({ can: !!(P.sender && P.sender.dtmf && P.sender.dtmf.canInsertDTMF), buffer: P.sender && P.sender.dtmf ? P.sender.dtmf.toneBuffer : null, state: P.state }), healthy: readyAllowed, micHeard: () => P.micHeard,
  sdp: () => (P.pc ? `${P.pc.localDescription && P.pc.localDescription.sdp}\n----\n${P.pc.remoteDescription && P.pc.remoteDescription.sdp}` : ''),
};
start();
