// Live world: reads the server's /ws stream (binary records, see PROTOCOL.md
// "Web view") and draws every player on a canvas map, plus a list. Served by
// `gameserver replay --web` it plays a recording: CLOCK records then show a
// timeline, whose controls reconnect with a new /ws query.
//
// Player names are user input: they only ever reach the page through
// textContent and fillText, never as markup (the server's CSP also forbids
// it with Trusted Types).
'use strict';

(() => {
  // Record tags and kinds of the wire format.
  const TAG_RESET = 1;
  const TAG_JOIN = 2;
  const TAG_MOVE = 3;
  const TAG_LEAVE = 4;
  const TAG_CLOCK = 5; // only from a replay (gameserver replay --web)
  const CLOCK_SIZE = 30;
  const KIND_LEGACY = 1;

  // Looks.
  const COLOR = {
    background: '#0b1016',
    gridMinor: '#141d27',
    gridMajor: '#213040',
    axis: '#38506a',
    label: '#5d7083',
    native: '#4ea1ff',
    nativeRing: '#a9d1ff',
    legacy: '#ff9f43',
    legacyRing: '#ffd2a6',
    name: '#dce6f0',
    nameHalo: 'rgba(11, 16, 22, 0.85)',
    empty: '#5d7083',
  };
  const FONT = '12px ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace';
  const PLAYER_RADIUS_PX = 6;
  const MAX_LABELS = 250; // past this many players, names only when zoomed in
  const MIN_LABEL_SCALE = 2; // px per unit needed to label a crowd

  // Motion and view.
  const SMOOTHING_PER_S = 14; // how fast drawn positions catch up with the server
  const SNAP_DISTANCE = 400; // units: a jump this long is not animated
  const FIT_MARGIN_PX = 70;
  const MIN_SCALE = 0.01; // px per unit: all of i16 space fits on a screen
  const MAX_SCALE = 60;
  const DEFAULT_SCALE = 4; // the Bevy client's zoom
  const WHEEL_ZOOM = 0.0015; // per wheel delta unit
  const BUTTON_ZOOM = 1.5;

  // Connection.
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 5000;
  const LIST_FLUSH_MS = 100; // list refresh while animation frames are paused

  // Replay.
  const SPEEDS = [0.25, 0.5, 1, 2, 4, 8, 16];
  const SEEK_STEP_MS = 10000;

  const canvas = document.getElementById('map');
  const ctx = canvas.getContext('2d');
  const list = document.getElementById('players');
  const empty = document.getElementById('empty');
  const count = document.getElementById('count');
  const status = document.getElementById('status');
  const statusPlayers = document.getElementById('status-players');
  const statusRate = document.getElementById('status-rate');
  const statusLink = document.getElementById('status-link');
  const fitButton = document.getElementById('fit');
  const decoder = new TextDecoder('utf-8');
  const timeline = document.getElementById('timeline');
  const tlPlay = document.getElementById('tl-play');
  const tlSpeed = document.getElementById('tl-speed');
  const tlSeek = document.getElementById('tl-seek');
  const tlClock = document.getElementById('tl-clock');

  /** id -> { id, name, legacy, x, y, has, dx, dy, li, dirty } */
  const players = new Map();
  const dirty = new Set();
  const view = { cx: 0, cy: 0, scale: DEFAULT_SCALE, follow: true };
  let connected = false;
  let retryMs = RETRY_MIN_MS;
  let movesCounted = 0; // moves since `rateSince`
  let rateSince = performance.now();
  let rate = 0; // moves per second over the last full second
  let lastFrame = performance.now();
  // A replay's clock, from its CLOCK records; null on the live view.
  let replay = null;
  let socketNow = null;
  // The replay's /ws query: where to start, how fast. A link may carry
  // one in its fragment (#at=MS&speed=S&paused=1) to open at a moment.
  let query = /^#(at|speed|paused)=[0-9.&=a-z]*$/.test(location.hash) ? '?' + location.hash.slice(1) : '';
  let seeking = false; // the user is dragging the timeline

  // ---- the stream -------------------------------------------------------

  function connect() {
    const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
    const socket = new WebSocket(scheme + location.host + '/ws' + query);
    socketNow = socket;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      connected = true;
      retryMs = RETRY_MIN_MS;
      renderStatus();
    };
    socket.onmessage = (event) => {
      if (event.data instanceof ArrayBuffer) apply(new DataView(event.data));
    };
    socket.onclose = () => {
      connected = false;
      renderStatus();
      if (socket.restart) {
        connect(); // a seek, a pause or a new speed: at once
        return;
      }
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    };
    socket.onerror = () => socket.close();
  }

  /** Applies one message: a sequence of records. */
  function apply(data) {
    const end = data.byteLength;
    let at = 0;
    let moves = 0;
    while (at < end) {
      const tag = data.getUint8(at);
      if (tag === TAG_RESET) {
        reset();
        at += 1;
      } else if (tag === TAG_JOIN && at + 7 <= end) {
        const len = data.getUint8(at + 6);
        if (at + 7 + len > end) break;
        const bytes = new Uint8Array(data.buffer, data.byteOffset + at + 7, len);
        join(data.getInt32(at + 1, true), data.getUint8(at + 5) === KIND_LEGACY, decoder.decode(bytes));
        at += 7 + len;
      } else if (tag === TAG_MOVE && at + 9 <= end) {
        move(data.getInt32(at + 1, true), data.getInt16(at + 5, true), data.getInt16(at + 7, true));
        moves += 1;
        at += 9;
      } else if (tag === TAG_LEAVE && at + 5 <= end) {
        leave(data.getInt32(at + 1, true));
        at += 5;
      } else if (tag === TAG_CLOCK && at + CLOCK_SIZE <= end) {
        replayClock({
          now: Number(data.getBigUint64(at + 1, true)),
          duration: Number(data.getBigUint64(at + 9, true)),
          start: Number(data.getBigUint64(at + 17, true)),
          speed: data.getUint32(at + 25, true) / 1000,
          paused: data.getUint8(at + 29) === 1,
        });
        at += CLOCK_SIZE;
      } else {
        break; // unknown or cut record: ignore the rest of this message
      }
    }
    movesCounted += moves;
  }

  // ---- the replay's timeline -------------------------------------------

  /** Shows where the replay is; the first CLOCK turns the page into a replay. */
  function replayClock(clock) {
    if (replay === null) {
      timeline.hidden = false;
      document.title = 'Replay · game server';
      document.querySelector('.bar h1').lastChild.textContent = ' Replay';
    }
    replay = clock;
    // Where a reconnect resumes (after a restart of the server, too).
    query = '?at=' + clock.now + '&speed=' + clock.speed + '&paused=' + (clock.paused ? 1 : 0);
    tlPlay.textContent = clock.paused || clock.now >= clock.duration ? 'Play' : 'Pause';
    tlSpeed.textContent = '×' + clock.speed;
    tlSeek.max = String(clock.duration);
    if (!seeking) tlSeek.value = String(clock.now);
    tlClock.textContent = clockText(clock.now) + ' / ' + clockText(clock.duration) +
      ' · ' + new Date(clock.start + clock.now).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }

  function clockText(ms) {
    const s = Math.floor(ms / 1000);
    const tenths = Math.floor(ms / 100) % 10;
    const h = Math.floor(s / 3600);
    const mm = String(Math.floor(s / 60) % 60);
    const ss = String(s % 60).padStart(2, '0');
    return (h > 0 ? h + ':' + mm.padStart(2, '0') : mm) + ':' + ss + '.' + tenths;
  }

  /** Asks the server for the replay from `at` (ms) at `speed`, paused or not. */
  function restart(at, speed, paused) {
    if (replay === null) return;
    const clamped = Math.max(0, Math.min(replay.duration, Math.round(at)));
    query = '?at=' + clamped + '&speed=' + speed + '&paused=' + (paused ? 1 : 0);
    if (socketNow) {
      socketNow.restart = true;
      socketNow.close();
    }
  }

  function changeSpeed(step) {
    if (replay === null) return;
    let i = SPEEDS.indexOf(replay.speed);
    if (i < 0) i = SPEEDS.indexOf(1);
    const speed = SPEEDS[Math.max(0, Math.min(SPEEDS.length - 1, i + step))];
    restart(replay.now, speed, replay.paused);
  }

  function togglePause() {
    if (replay === null) return;
    const atEnd = replay.now >= replay.duration;
    restart(atEnd ? 0 : replay.now, replay.speed, atEnd ? false : !replay.paused);
  }

  tlPlay.addEventListener('click', togglePause);
  document.getElementById('tl-slower').addEventListener('click', () => changeSpeed(-1));
  document.getElementById('tl-faster').addEventListener('click', () => changeSpeed(1));
  tlSeek.addEventListener('input', () => { seeking = true; });
  tlSeek.addEventListener('change', () => {
    seeking = false;
    if (replay !== null) restart(Number(tlSeek.value), replay.speed, replay.paused);
  });
  window.addEventListener('keydown', (e) => {
    if (replay === null || (e.target instanceof HTMLElement && e.target.closest('#players'))) return;
    if (e.key === ' ') { e.preventDefault(); togglePause(); }
    else if (e.key === '[') changeSpeed(-1);
    else if (e.key === ']') changeSpeed(1);
    else if (e.key === 'ArrowLeft' && e.target !== tlSeek) restart(replay.now - SEEK_STEP_MS, replay.speed, replay.paused);
    else if (e.key === 'ArrowRight' && e.target !== tlSeek) restart(replay.now + SEEK_STEP_MS, replay.speed, replay.paused);
  });

  function reset() {
    for (const player of players.values()) player.li.remove();
    players.clear();
    dirty.clear();
    renderCount();
  }

  function join(id, legacy, name) {
    let player = players.get(id);
    if (!player) {
      player = { id, name, legacy, x: 0, y: 0, has: false, dx: 0, dy: 0, li: makeItem(id) };
      players.set(id, player);
      insertSorted(player.li, id);
      renderCount();
    }
    player.name = name;
    player.legacy = legacy;
    markDirty(player);
  }

  function move(id, x, y) {
    const player = players.get(id);
    if (!player) return;
    const far = Math.abs(player.dx - x) + Math.abs(player.dy - y) > SNAP_DISTANCE;
    if (!player.has || far) {
      player.dx = x;
      player.dy = y;
    }
    player.x = x;
    player.y = y;
    player.has = true;
    markDirty(player);
  }

  function leave(id) {
    const player = players.get(id);
    if (!player) return;
    player.li.remove();
    players.delete(id);
    dirty.delete(player);
    renderCount();
  }

  // ---- the list ---------------------------------------------------------

  function makeItem(id) {
    const li = document.createElement('li');
    li.dataset.id = String(id);
    li.tabIndex = 0;
    for (const cls of ['swatch', 'name', 'id', 'pos']) {
      const span = document.createElement('span');
      span.className = cls;
      li.appendChild(span);
    }
    const find = () => {
      const player = players.get(id);
      if (!player || !player.has) return;
      view.follow = false;
      view.cx = player.x;
      view.cy = player.y;
      view.scale = Math.max(view.scale, DEFAULT_SCALE);
      renderFit();
    };
    li.addEventListener('click', find);
    li.addEventListener('keydown', (e) => { if (e.key === 'Enter') find(); });
    return li;
  }

  function insertSorted(li, id) {
    for (const other of list.children) {
      if (Number(other.dataset.id) > id) {
        list.insertBefore(li, other);
        return;
      }
    }
    list.appendChild(li);
  }

  function markDirty(player) {
    dirty.add(player);
  }

  function flushList() {
    for (const player of dirty) {
      const li = player.li;
      const [swatch, name, idSpan, pos] = li.children;
      swatch.className = player.legacy ? 'swatch legacy' : 'swatch native';
      name.textContent = '';
      if (player.legacy) {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = '[py]';
        name.appendChild(tag);
      }
      const text = document.createElement('span');
      text.className = 'text';
      text.textContent = player.name;
      name.appendChild(text);
      name.title = player.name;
      idSpan.textContent = '#' + player.id;
      if (player.has) {
        li.dataset.x = String(player.x);
        li.dataset.y = String(player.y);
        pos.textContent = '(' + player.x + ', ' + player.y + ')';
      } else {
        delete li.dataset.x;
        delete li.dataset.y;
        pos.textContent = 'no position yet';
      }
    }
    dirty.clear();
  }

  function renderCount() {
    count.textContent = String(players.size);
    empty.hidden = players.size > 0;
  }

  function renderStatus() {
    const now = performance.now();
    if (now - rateSince >= 1000) {
      rate = Math.round((movesCounted * 1000) / (now - rateSince));
      movesCounted = 0;
      rateSince = now;
    }
    const n = players.size;
    statusPlayers.textContent = n + (n === 1 ? ' player' : ' players');
    statusRate.textContent = rate + ' updates/s';
    statusLink.textContent = connected ? 'connected' : 'reconnecting…';
    status.classList.toggle('connected', connected);
    status.classList.toggle('reconnecting', !connected);
  }

  // ---- the map ----------------------------------------------------------

  function resize() {
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
    if (canvas.width !== w || canvas.height !== h) {
      canvas.width = w;
      canvas.height = h;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return { w: canvas.clientWidth, h: canvas.clientHeight };
  }

  const toScreenX = (x, w) => w / 2 + (x - view.cx) * view.scale;
  const toScreenY = (y, h) => h / 2 - (y - view.cy) * view.scale; // y grows upwards

  /** Grid step in world units: a 1-2-5 step at least 48 px apart. */
  function gridStep() {
    const raw = 48 / view.scale;
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * power >= raw) return m * power;
    return 10 * power;
  }

  function drawGrid(w, h) {
    const step = gridStep();
    const left = view.cx - w / 2 / view.scale;
    const right = view.cx + w / 2 / view.scale;
    const bottom = view.cy - h / 2 / view.scale;
    const top = view.cy + h / 2 / view.scale;
    ctx.lineWidth = 1;
    for (let major = 0; major < 2; major++) {
      ctx.strokeStyle = major ? COLOR.gridMajor : COLOR.gridMinor;
      ctx.beginPath();
      for (let x = Math.ceil(left / step) * step; x <= right; x += step) {
        if ((Math.round(x / step) % 5 === 0) !== Boolean(major)) continue;
        const sx = Math.round(toScreenX(x, w)) + 0.5;
        ctx.moveTo(sx, 0);
        ctx.lineTo(sx, h);
      }
      for (let y = Math.ceil(bottom / step) * step; y <= top; y += step) {
        if ((Math.round(y / step) % 5 === 0) !== Boolean(major)) continue;
        const sy = Math.round(toScreenY(y, h)) + 0.5;
        ctx.moveTo(0, sy);
        ctx.lineTo(w, sy);
      }
      ctx.stroke();
    }
    // The axes.
    ctx.strokeStyle = COLOR.axis;
    ctx.beginPath();
    const ax = Math.round(toScreenX(0, w)) + 0.5;
    const ay = Math.round(toScreenY(0, h)) + 0.5;
    ctx.moveTo(ax, 0);
    ctx.lineTo(ax, h);
    ctx.moveTo(0, ay);
    ctx.lineTo(w, ay);
    ctx.stroke();
    // Labels on the major lines, along the bottom and left edges.
    ctx.font = FONT;
    ctx.fillStyle = COLOR.label;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    const majorStep = step * 5;
    for (let x = Math.ceil(left / majorStep) * majorStep; x <= right; x += majorStep) {
      ctx.fillText(formatUnit(x), toScreenX(x, w), h - 26);
    }
    ctx.textAlign = 'left';
    ctx.textBaseline = 'middle';
    for (let y = Math.ceil(bottom / majorStep) * majorStep; y <= top; y += majorStep) {
      const sy = toScreenY(y, h);
      if (sy > 60 && sy < h - 40) ctx.fillText(formatUnit(y), 6, sy - 8);
    }
  }

  const formatUnit = (v) => String(Math.round(v * 1000) / 1000);

  function drawPlayers(w, h, dt) {
    const catchUp = 1 - Math.exp(-SMOOTHING_PER_S * dt);
    const labels = players.size <= MAX_LABELS || view.scale >= MIN_LABEL_SCALE;
    ctx.font = FONT;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'bottom';
    ctx.lineJoin = 'round';
    const drawn = [];
    for (const p of players.values()) {
      if (!p.has) continue;
      p.dx += (p.x - p.dx) * catchUp;
      p.dy += (p.y - p.dy) * catchUp;
      const sx = toScreenX(p.dx, w);
      const sy = toScreenY(p.dy, h);
      if (sx < -100 || sx > w + 100 || sy < -40 || sy > h + 40) continue;
      drawn.push([p, sx, sy]);
      const r = PLAYER_RADIUS_PX;
      ctx.lineWidth = 2;
      if (p.legacy) {
        ctx.fillStyle = COLOR.legacy;
        ctx.strokeStyle = COLOR.legacyRing;
        ctx.beginPath();
        ctx.roundRect(sx - r, sy - r, 2 * r, 2 * r, 2);
      } else {
        ctx.fillStyle = COLOR.native;
        ctx.strokeStyle = COLOR.nativeRing;
        ctx.beginPath();
        ctx.arc(sx, sy, r, 0, 2 * Math.PI);
      }
      ctx.fill();
      ctx.stroke();
    }
    if (!labels) return;
    for (const [p, sx, sy] of drawn) {
      const label = (p.legacy ? '[py] ' : '') + p.name + ' #' + p.id;
      ctx.lineWidth = 4;
      ctx.strokeStyle = COLOR.nameHalo;
      ctx.strokeText(label, sx, sy - PLAYER_RADIUS_PX - 5);
      ctx.fillStyle = p.legacy ? COLOR.legacyRing : COLOR.name;
      ctx.fillText(label, sx, sy - PLAYER_RADIUS_PX - 5);
    }
  }

  function drawEmpty(w, h) {
    ctx.font = '15px ' + FONT.split(' ').slice(1).join(' ');
    ctx.fillStyle = COLOR.empty;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'middle';
    const text = connected ? 'No player has a position yet' : 'Connecting to the server…';
    ctx.fillText(text, w / 2, h / 2 - 30);
  }

  /** The view that shows every player with a position. */
  function fitTarget(w, h) {
    let minX = Infinity, maxX = -Infinity, minY = Infinity, maxY = -Infinity;
    for (const p of players.values()) {
      if (!p.has) continue;
      minX = Math.min(minX, p.x); maxX = Math.max(maxX, p.x);
      minY = Math.min(minY, p.y); maxY = Math.max(maxY, p.y);
    }
    if (minX === Infinity) return { cx: 0, cy: 0, scale: DEFAULT_SCALE };
    const usableW = Math.max(w - 2 * FIT_MARGIN_PX, 50);
    const usableH = Math.max(h - 2 * FIT_MARGIN_PX, 50);
    const scale = Math.min(usableW / Math.max(maxX - minX, 1), usableH / Math.max(maxY - minY, 1));
    return {
      cx: (minX + maxX) / 2,
      cy: (minY + maxY) / 2,
      scale: clamp(Math.min(scale, DEFAULT_SCALE * 2), MIN_SCALE, MAX_SCALE),
    };
  }

  function followEveryone(w, h, dt) {
    const target = fitTarget(w, h);
    const t = 1 - Math.exp(-4 * dt);
    view.cx += (target.cx - view.cx) * t;
    view.cy += (target.cy - view.cy) * t;
    view.scale = Math.exp(Math.log(view.scale) + (Math.log(target.scale) - Math.log(view.scale)) * t);
  }

  function frame(now) {
    const dt = Math.min((now - lastFrame) / 1000, 0.25);
    lastFrame = now;
    flushList();
    const { w, h } = resize();
    if (view.follow) followEveryone(w, h, dt);
    ctx.fillStyle = COLOR.background;
    ctx.fillRect(0, 0, w, h);
    drawGrid(w, h);
    drawPlayers(w, h, dt);
    if (![...players.values()].some((p) => p.has)) drawEmpty(w, h);
    requestAnimationFrame(frame);
  }

  // ---- pan and zoom -----------------------------------------------------

  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));

  function zoomAt(factor, sx, sy) {
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    const wx = view.cx + (sx - w / 2) / view.scale;
    const wy = view.cy - (sy - h / 2) / view.scale;
    view.scale = clamp(view.scale * factor, MIN_SCALE, MAX_SCALE);
    view.cx = wx - (sx - w / 2) / view.scale;
    view.cy = wy + (sy - h / 2) / view.scale;
    stopFollowing();
  }

  function stopFollowing() {
    view.follow = false;
    renderFit();
  }

  function renderFit() {
    fitButton.setAttribute('aria-pressed', String(view.follow));
  }

  let drag = null;
  canvas.addEventListener('pointerdown', (e) => {
    drag = { x: e.clientX, y: e.clientY };
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add('dragging');
  });
  canvas.addEventListener('pointermove', (e) => {
    if (!drag) return;
    view.cx -= (e.clientX - drag.x) / view.scale;
    view.cy += (e.clientY - drag.y) / view.scale;
    drag = { x: e.clientX, y: e.clientY };
    stopFollowing();
  });
  const endDrag = () => {
    drag = null;
    canvas.classList.remove('dragging');
  };
  canvas.addEventListener('pointerup', endDrag);
  canvas.addEventListener('pointercancel', endDrag);
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const rect = canvas.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * WHEEL_ZOOM), e.clientX - rect.left, e.clientY - rect.top);
  }, { passive: false });

  fitButton.addEventListener('click', () => {
    view.follow = true;
    renderFit();
  });
  const zoomCentre = (factor) => zoomAt(factor, canvas.clientWidth / 2, canvas.clientHeight / 2);
  document.getElementById('zoom-in').addEventListener('click', () => zoomCentre(BUTTON_ZOOM));
  document.getElementById('zoom-out').addEventListener('click', () => zoomCentre(1 / BUTTON_ZOOM));
  window.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLElement && e.target.closest('#players')) return;
    if (e.key === 'f' || e.key === 'F') { view.follow = true; renderFit(); }
    else if (e.key === '+' || e.key === '=') zoomCentre(BUTTON_ZOOM);
    else if (e.key === '-') zoomCentre(1 / BUTTON_ZOOM);
  });

  // The list and status also refresh on a timer: animation frames stop in
  // a background tab, the list must not.
  setInterval(() => {
    flushList();
    renderStatus();
  }, LIST_FLUSH_MS);

  renderCount();
  renderStatus();
  connect();
  requestAnimationFrame(frame);
})();
