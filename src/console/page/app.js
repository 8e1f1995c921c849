// res_deviceuser console: the board, devices and users, in plain JavaScript.
// Every text from the server goes into the page with textContent, never as markup.
'use strict';

const I18N = {
  en: {
    skip: 'Skip to content', title: 'Device & User', board: 'Board', devices: 'Devices', users: 'Users',
    language: 'Language', logout: 'Log out', login_title: 'Console login', login_user: 'User',
    login_password: 'Password', login_submit: 'Log in', login_failed: 'Wrong user or password',
    search: 'Search', col_extension: 'Extension', col_name: 'Name', col_devices: 'Devices',
    col_state: 'State', col_since: 'Logged in since', col_duration: 'Duration', col_actions: 'Actions',
    col_device: 'Device', col_description: 'Description', col_device_type: 'Device Type',
    col_default_user: 'Default user', col_user: 'User', col_tech: 'Tech Type', col_display_name: 'Display name',
    col_language: 'Language', col_dnd: 'DND', add_device: 'Add device', add_user: 'Add user',
    edit_device: 'Edit device', edit_user: 'Edit user', f_device_id: 'Device id', f_description: 'Description',
    f_mode: 'Device type', f_default_user: 'Default user', f_dial: 'Dial string',
    f_logout_on_unregister: 'Log out when unregistered for (s)', f_extension: 'Extension',
    f_display_name: 'Display name', f_pin: 'PIN', f_language: 'Language', f_cid_number: 'Caller ID number',
    f_max_login_time: 'Max login time (s)', f_shift_end: 'Shift end (HH:MM)', f_device: 'Device',
    mode_adhoc: 'adhoc', mode_fixed: 'fixed', save: 'Save', cancel: 'Cancel', edit: 'Edit', delete: 'Delete',
    log_out: 'Log out', log_in: 'Log in…', login_on: 'Log in', dnd: 'DND', pin_set: 'A PIN is set. Leave empty to keep it.',
    pin_none: 'No PIN yet: the user cannot log in from a phone.', confirm_delete: 'Delete {0}?',
    login_on_title: 'Log {0} in on a device', saved: 'Saved', deleted: 'Deleted', conflict: '{0} was changed by someone else: it has been reloaded. Check it and save again.',
    feed_on: 'Live', feed_off: 'Reconnecting…', n_users: '{0} users, {1} logged in', none: '—',
    st_idle: 'Idle', st_ringing: 'Ringing', st_inuse: 'In use', st_busy: 'Busy', st_onhold: 'On hold',
    st_unavailable: 'Unavailable', st_dnd: 'DND', st_unknown: 'Unknown', st_invalid: 'Invalid',
    role_admin: 'administrator', role_supervisor: 'supervisor', error: 'Error', yes: 'on', no: 'off',
  },
  ru: {
    skip: 'К содержимому', title: 'Устройства и пользователи', board: 'Табло', devices: 'Устройства', users: 'Пользователи',
    language: 'Язык', logout: 'Выйти', login_title: 'Вход в консоль', login_user: 'Пользователь',
    login_password: 'Пароль', login_submit: 'Войти', login_failed: 'Неверный пользователь или пароль',
    search: 'Поиск', col_extension: 'Номер', col_name: 'Имя', col_devices: 'Устройства',
    col_state: 'Состояние', col_since: 'В системе с', col_duration: 'Длительность', col_actions: 'Действия',
    col_device: 'Устройство', col_description: 'Описание', col_device_type: 'Тип устройства',
    col_default_user: 'Пользователь по умолчанию', col_user: 'Пользователь', col_tech: 'Технология', col_display_name: 'Отображаемое имя',
    col_language: 'Язык', col_dnd: 'Не беспокоить', add_device: 'Добавить устройство', add_user: 'Добавить пользователя',
    edit_device: 'Изменить устройство', edit_user: 'Изменить пользователя', f_device_id: 'Номер устройства', f_description: 'Описание',
    f_mode: 'Тип устройства', f_default_user: 'Пользователь по умолчанию', f_dial: 'Строка набора',
    f_logout_on_unregister: 'Выход при потере регистрации через (с)', f_extension: 'Номер',
    f_display_name: 'Отображаемое имя', f_pin: 'PIN-код', f_language: 'Язык', f_cid_number: 'Номер CallerID',
    f_max_login_time: 'Макс. время входа (с)', f_shift_end: 'Конец смены (ЧЧ:ММ)', f_device: 'Устройство',
    mode_adhoc: 'adhoc (свободное)', mode_fixed: 'fixed (закреплённое)', save: 'Сохранить', cancel: 'Отмена', edit: 'Изменить', delete: 'Удалить',
    log_out: 'Выход', log_in: 'Вход…', login_on: 'Войти', dnd: 'Не беспокоить', pin_set: 'PIN задан. Оставьте пустым, чтобы не менять.',
    pin_none: 'PIN не задан: пользователь не сможет войти с телефона.', confirm_delete: 'Удалить {0}?',
    login_on_title: 'Вход {0} на устройство', saved: 'Сохранено', deleted: 'Удалено', conflict: '{0} изменил кто-то другой: данные перезагружены. Проверьте и сохраните снова.',
    feed_on: 'Онлайн', feed_off: 'Переподключение…', n_users: 'пользователей: {0}, в системе: {1}', none: '—',
    st_idle: 'Свободен', st_ringing: 'Вызов', st_inuse: 'Разговор', st_busy: 'Занят', st_onhold: 'Удержание',
    st_unavailable: 'Недоступен', st_dnd: 'Не беспокоить', st_unknown: 'Неизвестно', st_invalid: 'Ошибка',
    role_admin: 'администратор', role_supervisor: 'супервизор', error: 'Ошибка', yes: 'вкл', no: 'выкл',
  },
};

const $ = (sel, root) => (root || document).querySelector(sel);
const state = {
  lang: 'en', session: null, board: null, rows: new Map(), devices: [], users: [], tab: 'board',
  ws: null, retry: 0, boardSeq: 0, devicesSeq: 0, usersSeq: 0, pending: null,
  // The board's users that match the search, the rows in the document (first, end) and
  // their height in pixels.
  view: [], shown: [0, 0], rowHeight: 0,
  // Live-feed frames received, by kind.
  frames: { text: 0, binary: 0 },
};

function t(key, ...args) {
  const s = (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
  return s.replace(/\{(\d)\}/g, (_, i) => String(args[Number(i)]));
}

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === 'text') e.textContent = v;
    else if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'type' || k === 'title') e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function status(msg) {
  const s = $('#status');
  s.textContent = msg;
  clearTimeout(status.timer);
  status.timer = setTimeout(() => { s.textContent = ''; }, 4000);
}

// ---- language ------------------------------------------------------------------------

function pickLanguage() {
  const saved = localStorage.getItem('deviceuser.lang');
  if (saved && I18N[saved]) return saved;
  const langs = navigator.languages || [navigator.language || 'en'];
  return langs.some((l) => /^ru\b/i.test(l)) ? 'ru' : 'en';
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  $('#lang').value = state.lang;
  for (const e of document.querySelectorAll('[data-i18n]')) e.textContent = t(e.dataset.i18n);
  document.title = t('title');
  renderWho();
  if (state.board) renderBoard();
  renderDevices();
  renderUsers();
  renderFeedStatus();
}

// ---- API -----------------------------------------------------------------------------

async function api(method, path, body, etag) {
  const headers = { 'Accept': 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && state.session) headers['X-CSRF-Token'] = state.session.csrf;
  if (etag) headers['If-Match'] = etag;
  const r = await fetch('api/' + path, {
    method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 && path !== 'session') showLogin();
  return { status: r.status, ok: r.ok, data: data || {}, etag: r.headers.get('ETag') };
}

const enc = encodeURIComponent;

// ---- session -------------------------------------------------------------------------

function showLogin() {
  state.session = null;
  if (state.ws) { state.ws.onclose = null; state.ws.close(); state.ws = null; }
  // Nothing of the last console user's stays in the page (the next may have another role);
  // answers still on their way are ignored.
  state.boardSeq++; state.devicesSeq++; state.usersSeq++;
  state.board = null; state.pending = null; state.view = []; state.rows = new Map();
  state.devices = []; state.users = [];
  $('#board-rows').replaceChildren();
  $('#board-count').textContent = '';
  renderDevices();
  renderUsers();
  $('#tabs').hidden = true;
  $('#logout').hidden = true;
  for (const id of ['board', 'devices', 'users']) $('#' + id).hidden = true;
  $('#login').hidden = false;
  renderWho();
  $('#login-user').focus();
}

async function login(ev) {
  ev.preventDefault();
  const f = ev.target;
  $('#login-error').textContent = '';
  const r = await api('POST', 'session', { user: f.user.value, password: f.password.value });
  f.password.value = '';
  if (!r.ok) {
    $('#login-error').textContent = r.status === 401 ? t('login_failed') : (r.data.error || t('error'));
    return;
  }
  start(r.data);
}

async function logout() {
  await api('DELETE', 'session');
  showLogin();
}

function renderWho() {
  const s = state.session;
  $('#who').textContent = s ? `${s.user} (${t('role_' + s.role)})` : '';
}

function isAdmin() { return state.session && state.session.role === 'admin'; }

function start(session) {
  state.session = session;
  $('#login').hidden = true;
  $('#tabs').hidden = false;
  $('#logout').hidden = false;
  for (const b of document.querySelectorAll('.admin')) b.hidden = !isAdmin();
  renderWho();
  selectTab(state.tab, false);
  // The board loads once the feed is open (no event is missed in between); without a feed
  // it loads anyway.
  connect();
}

/** Without the live feed (res_http_websocket not loaded), the board reloads after actions. */
function refreshIfOffline() {
  if (!state.ws || state.ws.readyState !== WebSocket.OPEN) loadBoard();
}

// ---- tabs (arrow keys move between them) ---------------------------------------------

const TABS = ['board', 'devices', 'users'];

function selectTab(name, focus) {
  state.tab = name;
  for (const n of TABS) {
    const tab = $('#tab-' + n);
    const on = n === name;
    tab.setAttribute('aria-selected', String(on));
    tab.tabIndex = on ? 0 : -1;
    $('#' + n).hidden = !on;
  }
  if (focus) $('#tab-' + name).focus();
  if (name === 'board') renderWindow();
  if (name === 'devices') loadDevices();
  if (name === 'users') loadUsers();
}

function tabKeys(ev) {
  const i = TABS.indexOf(state.tab);
  let j = null;
  if (ev.key === 'ArrowRight') j = (i + 1) % TABS.length;
  else if (ev.key === 'ArrowLeft') j = (i + TABS.length - 1) % TABS.length;
  else if (ev.key === 'Home') j = 0;
  else if (ev.key === 'End') j = TABS.length - 1;
  if (j !== null) { ev.preventDefault(); selectTab(TABS[j], true); }
}

// ---- live feed -------------------------------------------------------------------------

function renderFeedStatus() {
  const s = $('#feed-status');
  const on = state.ws && state.ws.readyState === WebSocket.OPEN;
  s.dataset.state = on ? 'on' : 'off';
  s.textContent = state.session ? t(on ? 'feed_on' : 'feed_off') : '';
}

// Frames are JSON arrays of events; with `?compress=deflate`, bursts may come as binary
// frames: raw DEFLATE of events each followed by a comma.
async function decodeFrame(data) {
  if (typeof data === 'string') return JSON.parse(data);
  const inflated = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  const text = await new Response(inflated).text();
  return JSON.parse('[' + text.slice(0, -1) + ']');
}

function connect() {
  if (!state.session) return;
  const compress = typeof DecompressionStream === 'function' ? '?compress=deflate' : '';
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + new URL('ws', document.baseURI).pathname + compress;
  const ws = new WebSocket(url, 'deviceuser');
  ws.binaryType = 'arraybuffer';
  state.ws = ws;
  // Frames are decoded one after the other, so that events apply in the order sent.
  let decoded = Promise.resolve();
  ws.onopen = () => { state.retry = 0; renderFeedStatus(); loadBoard(); };
  ws.onmessage = (m) => {
    state.frames[typeof m.data === 'string' ? 'text' : 'binary'] += 1;
    decoded = decoded.then(() => decodeFrame(m.data)).then((events) => {
      for (const e of events) {
        // While the board loads, events wait and are applied to it once it arrives (each
        // event sets a state, so applying one the board already shows changes nothing).
        if (state.pending && e.type !== 'config') state.pending.push(e); else apply(e);
      }
    }).catch((err) => console.warn('live feed:', err));
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    renderFeedStatus();
    if (!state.board) loadBoard();
    const wait = Math.min(5000, 500 * (1 + state.retry++));
    setTimeout(async () => {
      const r = await api('GET', 'session');
      if (r.ok) { state.session = r.data; connect(); }
    }, wait);
  };
  renderFeedStatus();
}

function boardUser(id) {
  return state.board && state.byId ? state.byId.get(id) : null;
}

function boardDevice(id) {
  return state.board && state.devById ? state.devById.get(id) : null;
}

function describe(device) {
  const d = boardDevice(device);
  return d ? d.description : device;
}

function apply(e, quiet) {
  if (e.type === 'config') { loadBoard(); if (state.tab === 'devices') loadDevices(); if (state.tab === 'users') loadUsers(); return; }
  if (!state.board) return;
  const u = e.user !== undefined ? boardUser(e.user) : null;
  if (e.type === 'login') {
    const d = boardDevice(e.device);
    if (d) d.user = e.user;
    if (u && !u.devices.some((x) => x.id === e.device)) {
      u.devices.push({ id: e.device, description: describe(e.device), since: e.since });
      u.devices.sort((a, b) => (a.id < b.id ? -1 : 1));
    }
  } else if (e.type === 'logout') {
    const d = boardDevice(e.device);
    if (d && d.user === e.user) d.user = null;
    if (u) u.devices = u.devices.filter((x) => x.id !== e.device);
  } else if (e.type === 'dnd') {
    if (u) { u.dnd = e.on; if (e.on) u.state = 'dnd'; }
  } else if (e.type === 'state') {
    if (u) u.state = u.dnd ? 'dnd' : e.state;
  }
  if (quiet) return;
  if (u) updateRow(u);
  if (state.tab === 'devices' && (e.type === 'login' || e.type === 'logout')) loadDevices();
}

// ---- board -----------------------------------------------------------------------------

async function loadBoard() {
  // Only the answer to the last request counts: an earlier one may arrive later.
  const seq = ++state.boardSeq;
  state.pending = state.pending || [];
  const r = await api('GET', 'board');
  if (seq !== state.boardSeq) return;
  const pending = state.pending;
  state.pending = null;
  if (!r.ok) return;
  state.board = r.data;
  state.byId = new Map(r.data.users.map((u) => [u.id, u]));
  state.devById = new Map(r.data.devices.map((d) => [d.id, d]));
  state.clockSkew = Date.now() / 1000 - r.data.now;
  for (const e of pending) apply(e, true);
  renderBoard();
}

function stateBadge(s) {
  return el('span', { class: 'state', 'data-state': s, text: t('st_' + s) });
}

const timeFormats = {};
function fmtTime(unix) {
  if (!unix) return t('none');
  const tag = state.lang === 'ru' ? 'ru-RU' : 'en-GB';
  timeFormats[tag] = timeFormats[tag] || new Intl.DateTimeFormat(tag, { dateStyle: 'short', timeStyle: 'medium' });
  return timeFormats[tag].format(new Date(unix * 1000));
}

function fmtDuration(secs) {
  secs = Math.max(0, Math.floor(secs));
  const h = Math.floor(secs / 3600), m = Math.floor((secs % 3600) / 60), s = secs % 60;
  return `${h}:${String(m).padStart(2, '0')}:${String(s).padStart(2, '0')}`;
}

function serverNow() { return Date.now() / 1000 - (state.clockSkew || 0); }

function since(u) {
  const s = u.devices.map((d) => d.since).filter((x) => x);
  return s.length ? Math.min(...s) : 0;
}

function boardRow(u) {
  const tr = el('tr', { 'data-user': u.id });
  tr.append(el('td', { class: 'id' }), el('td', { class: 'name' }), el('td', { class: 'devices' }),
    el('td', { class: 'st' }), el('td', { class: 'since' }), el('td', { class: 'duration' }), el('td', { class: 'actions' }));
  fillRow(tr, u);
  return tr;
}

function fillRow(tr, u) {
  const c = tr.children;
  c[0].textContent = u.id;
  c[1].textContent = u.fullname;
  c[2].textContent = u.devices.length ? u.devices.map((d) => `${d.id} (${d.description})`).join(', ') : t('none');
  // One line per row: the whole list is in the cell's tooltip when it does not fit.
  c[2].title = c[2].textContent;
  c[3].replaceChildren(stateBadge(u.dnd ? 'dnd' : u.state));
  const s = since(u);
  c[4].textContent = s ? fmtTime(s) : t('none');
  c[5].textContent = s ? fmtDuration(serverNow() - s) : '';
  c[5].dataset.since = s || '';
  // The buttons' clicks are handled once, on the table (see boardClick).
  const actions = [];
  // A fixed device keeps its default user: only an adhoc device's user can be logged out.
  if (u.devices.some((d) => deviceMode(d.id) !== 'fixed')) {
    actions.push(el('button', { type: 'button', 'data-action': 'logout', text: t('log_out') }));
  }
  if (isAdmin()) {
    actions.push(el('button', { type: 'button', 'data-action': 'login', text: t('log_in') }));
  }
  actions.push(el('button', { type: 'button', 'data-action': 'dnd', 'aria-pressed': String(!!u.dnd), text: t('dnd') }));
  c[6].replaceChildren(...actions);
}

function deviceMode(id) {
  const d = boardDevice(id);
  return d ? d.mode : undefined;
}

function boardClick(ev) {
  const b = ev.target.closest('button[data-action]');
  const tr = b && b.closest('tr[data-user]');
  const u = tr && boardUser(tr.dataset.user);
  if (!u) return;
  if (b.dataset.action === 'logout') logoutUser(u.id);
  else if (b.dataset.action === 'login') openLoginOn(u);
  else if (b.dataset.action === 'dnd') setDnd(u.id, !u.dnd);
}

function matches(tr, q) {
  q = (q || '').trim().toLowerCase();
  return !q || tr.textContent.toLowerCase().includes(q);
}

/** Whether a board user matches the search: extension, name, devices or state. */
function userMatches(u, q) {
  if (!q) return true;
  const text = [u.id, u.fullname, t('st_' + (u.dnd ? 'dnd' : u.state)),
    ...u.devices.map((d) => `${d.id} ${d.description}`)].join(' ').toLowerCase();
  return text.includes(q);
}

/** The board's rows: only those in and near the window are in the document (a board of
 *  thousands of users keeps a few dozen rows), between two spacer rows as tall as the rows
 *  they stand for; scrolling (with the mouse or the keyboard: a focused row scrolls into
 *  view) brings in the others. */
const OVERSCAN = 20;
const DEFAULT_ROW_HEIGHT = 36;

function boardQuery() {
  return ($('#board-search').value || '').trim().toLowerCase();
}

/** Filters the board by the search, then shows the rows in the window. */
function renderBoard() {
  const q = boardQuery();
  state.view = q ? state.board.users.filter((u) => userMatches(u, q)) : state.board.users;
  state.rows = new Map();
  state.shown = [0, 0];
  $('#board-rows').replaceChildren();
  renderWindow();
  renderCount();
  // For measurements (the benchmark reads them): the first screen is in the document, then
  // painted.
  performance.mark('board-rendered');
  requestAnimationFrame(() => requestAnimationFrame(() => performance.mark('board-painted')));
}

function spacer(height) {
  const td = el('td', { colSpan: 7 });
  td.style.cssText = `height:${height}px;padding:0;border:0`;
  return el('tr', { class: 'spacer', 'aria-hidden': 'true' }, td);
}

/** Puts the rows of the window (and OVERSCAN more each side) in the document, keeping the
 *  rows already there (and the focus in them). */
function renderWindow() {
  if (!state.board || state.tab !== 'board') return;
  const body = $('#board-rows');
  const view = state.view;
  const h = state.rowHeight || DEFAULT_ROW_HEIGHT;
  const top = body.getBoundingClientRect().top;
  const first = Math.max(0, Math.min(view.length, Math.floor(-top / h) - OVERSCAN));
  const end = Math.max(first, Math.min(view.length, Math.ceil((innerHeight - top) / h) + OVERSCAN));
  const rows = new Map();
  const trs = [];
  for (let i = first; i < end; i++) {
    const u = view[i];
    const tr = state.rows.get(u.id) || boardRow(u);
    rows.set(u.id, tr);
    trs.push(tr);
  }
  const focused = body.contains(document.activeElement) ? document.activeElement : null;
  state.rows = rows;
  state.shown = [first, end];
  body.replaceChildren(spacer(first * h), ...trs, spacer((view.length - end) * h));
  if (focused && focused.isConnected && document.activeElement !== focused) focused.focus({ preventScroll: true });
  if (!state.rowHeight && trs.length) {
    state.rowHeight = trs[0].getBoundingClientRect().height || DEFAULT_ROW_HEIGHT;
    if (Math.abs(state.rowHeight - h) > 1) renderWindow();
  }
}

/** Work for the next frame: the window's rows after a scroll, the view after an event that
 *  may change what the search matches, the count. */
const pendingWork = { window: false, filter: false, count: false };
function schedule(what) {
  const idle = !pendingWork.window && !pendingWork.filter && !pendingWork.count;
  pendingWork[what] = true;
  if (!idle) return;
  requestAnimationFrame(() => {
    const w = { ...pendingWork };
    pendingWork.window = pendingWork.filter = pendingWork.count = false;
    if (!state.board) return;
    if (w.filter) {
      const q = boardQuery();
      state.view = q ? state.board.users.filter((u) => userMatches(u, q)) : state.board.users;
    }
    if (w.filter || w.window) renderWindow();
    if (w.count) renderCount();
  });
}

function renderCount() {
  if (!state.board) return;
  const on = state.board.users.filter((u) => u.devices.length).length;
  $('#board-count').textContent = t('n_users', state.board.users.length, on);
}

function updateRow(u) {
  const tr = state.rows.get(u.id);
  if (tr) fillRow(tr, u);
  if (boardQuery()) schedule('filter');
  schedule('count');
}

function tick() {
  const now = serverNow();
  for (const td of document.querySelectorAll('#board-rows td.duration[data-since]:not([data-since=""])')) {
    td.textContent = fmtDuration(now - Number(td.dataset.since));
  }
}

async function logoutUser(id) {
  const r = await api('DELETE', 'bindings/user/' + enc(id));
  if (!r.ok) status(r.data.error || t('error'));
  refreshIfOffline();
}

async function setDnd(id, on) {
  const r = await api('PUT', `users/${enc(id)}/dnd`, { on });
  if (!r.ok) status(r.data.error || t('error'));
  refreshIfOffline();
}

function openLoginOn(u) {
  const dlg = $('#login-on-dialog');
  $('#login-on-title').textContent = t('login_on_title', u.id);
  const sel = $('#login-on-device');
  sel.replaceChildren(...state.board.devices.filter((d) => d.mode === 'adhoc').map((d) =>
    el('option', { value: d.id, text: `${d.id} — ${d.description}${d.user ? ' (' + d.user + ')' : ''}` })));
  clearErrors(dlg);
  dlg.dataset.user = u.id;
  dlg.showModal();
  sel.focus();
}

async function submitLoginOn(ev) {
  ev.preventDefault();
  const dlg = $('#login-on-dialog');
  const r = await api('POST', 'bindings', { user: dlg.dataset.user, device: $('#login-on-device').value });
  if (r.ok) { dlg.close(); refreshIfOffline(); } else showErrors(dlg, r.data);
}

// ---- devices and users -----------------------------------------------------------------

async function loadDevices() {
  const seq = ++state.devicesSeq;
  const r = await api('GET', 'devices');
  if (r.ok && seq === state.devicesSeq) { state.devices = r.data.devices; renderDevices(); }
}

async function loadUsers() {
  const seq = ++state.usersSeq;
  const r = await api('GET', 'users');
  if (r.ok && seq === state.usersSeq) { state.users = r.data.users; renderUsers(); }
}

function tech(dial) {
  const i = dial.search(/[/:]/);
  return i > 0 ? dial.slice(0, i) : dial;
}

function rowActions(kind, item) {
  if (!isAdmin()) return [];
  return [
    el('button', { type: 'button', 'data-action': 'edit', text: t('edit'), onclick: () => (kind === 'device' ? openDevice(item) : openUser(item)) }),
    el('button', { type: 'button', class: 'danger', 'data-action': 'delete', text: t('delete'), onclick: () => remove(kind, item) }),
  ];
}

function renderDevices() {
  const q = $('#devices-search').value;
  const rows = state.devices.map((d) => {
    const tr = el('tr', { 'data-device': d.id },
      el('td', { text: d.id }), el('td', { text: d.description }), el('td', { text: t('mode_' + d.mode) }),
      el('td', { text: d.default_user || t('none') }), el('td', { text: d.user || t('none') }),
      el('td', { text: tech(d.dial) }), el('td', {}, stateBadge(d.state)),
      el('td', { class: 'actions' }, ...rowActions('device', d)));
    tr.hidden = !matches(tr, q);
    return tr;
  });
  $('#devices-rows').replaceChildren(...rows);
}

function renderUsers() {
  const q = $('#users-search').value;
  const rows = state.users.map((u) => {
    const tr = el('tr', { 'data-user': u.id },
      el('td', { text: u.id }), el('td', { text: u.fullname }), el('td', { text: u.language || t('none') }),
      el('td', { text: u.devices.length ? u.devices.join(', ') : t('none') }), el('td', {}, stateBadge(u.state)),
      el('td', { text: t(u.dnd ? 'yes' : 'no') }), el('td', { class: 'actions' }, ...rowActions('user', u)));
    tr.hidden = !matches(tr, q);
    return tr;
  });
  $('#users-rows').replaceChildren(...rows);
}

function clearErrors(dlg) {
  for (const p of dlg.querySelectorAll('[data-for]')) p.textContent = '';
}

function showErrors(dlg, data) {
  clearErrors(dlg);
  const general = [data.error || t('error')];
  for (const f of data.fields || []) {
    const p = dlg.querySelector(`.field-error[data-for="${CSS.escape(f.field)}"]`);
    if (p) p.textContent = f.message; else general.push(`${f.field}: ${f.message}`);
  }
  for (const e of data.file_errors || []) general.push(e);
  dlg.querySelector('.error[data-for=""]').textContent = general.join('\n');
}

function fill(form, item, fields) {
  for (const f of fields) {
    const v = item[f];
    form.elements[f].value = v === null || v === undefined ? '' : String(v);
  }
}

function openDevice(d) {
  const dlg = $('#device-dialog');
  const form = $('#device-form');
  form.reset();
  clearErrors(dlg);
  $('#device-dialog-title').textContent = d ? t('edit_device') : t('add_device');
  form.elements.id.readOnly = !!d;
  if (d) fill(form, d, ['id', 'description', 'mode', 'default_user', 'dial', 'logout_on_unregister']);
  dlg.dataset.id = d ? d.id : '';
  dlg.dataset.etag = d ? d.etag : '';
  dlg.showModal();
  (d ? form.elements.description : form.elements.id).focus();
}

function openUser(u) {
  const dlg = $('#user-dialog');
  const form = $('#user-form');
  form.reset();
  clearErrors(dlg);
  $('#user-dialog-title').textContent = u ? t('edit_user') : t('add_user');
  form.elements.id.readOnly = !!u;
  if (u) fill(form, u, ['id', 'fullname', 'language', 'cid_number', 'max_login_time', 'shift_end']);
  $('#pin-hint').textContent = u ? t(u.has_password ? 'pin_set' : 'pin_none') : '';
  dlg.dataset.id = u ? u.id : '';
  dlg.dataset.etag = u ? u.etag : '';
  dlg.showModal();
  (u ? form.elements.fullname : form.elements.id).focus();
}

function values(form, fields) {
  const v = {};
  for (const f of fields) v[f] = form.elements[f].value;
  return v;
}

async function save(kind, ev) {
  ev.preventDefault();
  const dlg = $(`#${kind}-dialog`);
  const form = $(`#${kind}-form`);
  const fields = kind === 'device'
    ? ['id', 'description', 'mode', 'default_user', 'dial', 'logout_on_unregister']
    : ['id', 'fullname', 'language', 'cid_number', 'max_login_time', 'shift_end'];
  const body = values(form, fields);
  if (kind === 'user') {
    const pin = form.elements.password.value;
    if (pin !== '') body.password = pin;
  }
  const id = dlg.dataset.id;
  const plural = kind + 's';
  const r = id
    ? await api('PUT', `${plural}/${enc(id)}`, body, dlg.dataset.etag)
    : await api('POST', plural, body);
  if (r.ok) {
    dlg.close();
    status(t('saved'));
    kind === 'device' ? loadDevices() : loadUsers();
    return;
  }
  showErrors(dlg, r.data);
  if (r.status === 412) {
    const fresh = await api('GET', `${plural}/${enc(id)}`);
    if (fresh.ok) {
      dlg.dataset.etag = fresh.data.etag;
      const keep = form.elements.password ? form.elements.password.value : '';
      kind === 'device' ? fill(form, fresh.data, fields) : fill(form, fresh.data, fields);
      if (form.elements.password) form.elements.password.value = keep;
      dlg.querySelector('.error[data-for=""]').textContent = t('conflict', id);
    }
  }
}

async function remove(kind, item) {
  if (!confirm(t('confirm_delete', item.id))) return;
  const r = await api('DELETE', `${kind}s/${enc(item.id)}`, undefined, item.etag);
  if (r.ok) status(t('deleted')); else status([r.data.error].concat(r.data.file_errors || []).join('\n'));
  kind === 'device' ? loadDevices() : loadUsers();
}

// ---- start -----------------------------------------------------------------------------

document.addEventListener('DOMContentLoaded', async () => {
  state.lang = pickLanguage();
  $('#lang').addEventListener('change', (e) => {
    state.lang = e.target.value;
    localStorage.setItem('deviceuser.lang', state.lang);
    applyLanguage();
  });
  $('#login-form').addEventListener('submit', login);
  $('#logout').addEventListener('click', logout);
  for (const n of TABS) $('#tab-' + n).addEventListener('click', () => selectTab(n, false));
  $('#tabs').addEventListener('keydown', tabKeys);
  $('#board-rows').addEventListener('click', boardClick);
  $('#board-search').addEventListener('input', () => { if (state.board) renderBoard(); });
  addEventListener('scroll', () => schedule('window'), { passive: true });
  addEventListener('resize', () => schedule('window'));
  $('#devices-search').addEventListener('input', renderDevices);
  $('#users-search').addEventListener('input', renderUsers);
  $('#add-device').addEventListener('click', () => openDevice(null));
  $('#add-user').addEventListener('click', () => openUser(null));
  $('#device-form').addEventListener('submit', (e) => save('device', e));
  $('#user-form').addEventListener('submit', (e) => save('user', e));
  $('#login-on-form').addEventListener('submit', submitLoginOn);
  for (const b of document.querySelectorAll('dialog .cancel')) b.addEventListener('click', () => b.closest('dialog').close());
  applyLanguage();
  setInterval(tick, 1000);
  const r = await api('GET', 'session');
  if (r.ok) start(r.data); else showLogin();
});
