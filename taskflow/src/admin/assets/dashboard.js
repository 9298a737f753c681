// taskflow dashboard. No framework, no build step. Every value that came from a task (names,
// arguments, logs, errors, tags) reaches the DOM only as text (textContent / text nodes), never
// as HTML.
(() => {
  'use strict';

  const cfg = JSON.parse(document.getElementById('tf-config').textContent);
  const base = cfg.base;
  const STATUSES = ['pending', 'running', 'success', 'failed', 'interrupted', 'cancelled', 'rejected'];
  const FINISHED = new Set(['success', 'failed', 'interrupted', 'cancelled', 'rejected']);
  const store = {
    get(key, fallback) {
      try { const v = localStorage.getItem('taskflow:' + base + ':' + key); return v === null ? fallback : JSON.parse(v); } catch (_) { return fallback; }
    },
    set(key, value) {
      try { localStorage.setItem('taskflow:' + base + ':' + key, JSON.stringify(value)); } catch (_) { /* private mode */ }
    },
  };
  const $ = (id) => document.getElementById(id);

  // ---- DOM helpers: text only --------------------------------------------------------------
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'text') node.textContent = String(value);
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else if (key === 'data') Object.assign(node.dataset, value);
      else if (value === true) node.setAttribute(key, '');
      else node.setAttribute(key, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function badge(text, kind) { return el('span', { class: 'badge ' + (kind || text), text }); }

  // ---- formatting ------------------------------------------------------------------------
  const dateFmt = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
  const timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 });
  const relFmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  function fmtDate(iso) { if (!iso) return '—'; const d = new Date(iso); return isNaN(d) ? String(iso) : dateFmt.format(d); }
  function fmtTime(iso) { const d = new Date(iso); return isNaN(d) ? String(iso) : timeFmt.format(d); }
  function fmtAgo(iso) {
    if (!iso) return '—';
    const secs = (new Date(iso).getTime() - Date.now()) / 1000;
    const abs = Math.abs(secs);
    if (abs < 45) return relFmt.format(Math.round(secs), 'second');
    if (abs < 2700) return relFmt.format(Math.round(secs / 60), 'minute');
    if (abs < 64800) return relFmt.format(Math.round(secs / 3600), 'hour');
    return relFmt.format(Math.round(secs / 86400), 'day');
  }
  function fmtDuration(secs) {
    if (secs === null || secs === undefined) return '—';
    if (secs < 1) return Math.round(secs * 1000) + ' ms';
    if (secs < 60) return secs.toFixed(secs < 10 ? 2 : 1) + ' s';
    const m = Math.floor(secs / 60);
    if (m < 60) return m + 'm ' + Math.round(secs % 60) + 's';
    return Math.floor(m / 60) + 'h ' + (m % 60) + 'm';
  }
  function shortId(id) { return '…' + String(id).slice(-8); }
  function fmtJson(value) { return JSON.stringify(value, null, 2); }
  function when(iso) { return el('span', { title: fmtDate(iso), text: fmtAgo(iso) }); }

  // ---- toast and API -----------------------------------------------------------------------
  let toastTimer = null;
  function toast(message) {
    const t = $('toast');
    t.textContent = message;
    t.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
  }
  function toLogin() {
    location.href = base + '/login?next=' + encodeURIComponent(location.pathname + location.search);
  }
  async function api(method, path, body) {
    const options = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (method !== 'GET') options.headers['X-Taskflow-Request'] = '1';
    if (body !== undefined) {
      options.headers['Content-Type'] = 'application/json';
      options.body = JSON.stringify(body);
    }
    const response = await fetch(base + path, options);
    if (response.status === 401 && cfg.auth) { toLogin(); throw new Error('signed out'); }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || response.statusText);
    return data;
  }

  // ---- state -------------------------------------------------------------------------------
  const FILTER_KEYS = ['status', 'name', 'tag', 'since', 'q', 'limit'];
  const state = {
    filters: { status: '', name: '', tag: '', since: '', q: '', limit: '50' },
    rows: [],
    page: 0,
    cursors: [null],
    nextCursor: null,
    sort: store.get('sort', { key: null, dir: -1 }),
    selected: null,
    paused: false,
    buffered: new Map(),
    bufferedResync: false,
    pausedCount: 0,
    metrics: null,
    tab: 'tasks',
    names: new Set(),
    flash: new Set(),
  };

  function loadFilters() {
    const params = new URLSearchParams(location.search);
    const fromUrl = FILTER_KEYS.some((k) => params.has(k));
    const saved = store.get('filters', {});
    for (const key of FILTER_KEYS) {
      const value = fromUrl ? params.get(key) : saved[key];
      if (typeof value === 'string' && value !== '') state.filters[key] = value;
    }
  }
  function saveFilters() {
    store.set('filters', state.filters);
    const qs = filterQuery();
    history.replaceState(null, '', location.pathname + (qs ? '?' + qs : ''));
  }
  function filterQuery(extra) {
    const params = new URLSearchParams();
    for (const key of FILTER_KEYS) {
      const value = state.filters[key];
      if (value && !(key === 'limit' && value === '50')) params.set(key, value);
    }
    for (const [k, v] of Object.entries(extra || {})) if (v !== null && v !== undefined) params.set(k, v);
    return params.toString();
  }

  // ---- metric cards ------------------------------------------------------------------------
  function renderCards(m) {
    if (!m) return;
    state.metrics = m;
    const rate = m.success_rate === null || m.success_rate === undefined ? '—' : (m.success_rate * 100).toFixed(1) + '%';
    const cards = [
      ['Total', m.total, ''],
      ['Pending', m.by_status.pending, 'pending'],
      ['Running', m.by_status.running, 'running'],
      ['Succeeded', m.by_status.success, 'success'],
      ['Failed', m.by_status.failed, 'failed'],
      ['Dead letters', (m.by_status.failed || 0) + (m.by_status.interrupted || 0) + (m.by_status.rejected || 0), 'failed'],
      ['Success rate', rate, ''],
      ['Avg duration', fmtDuration(m.avg_duration), ''],
      ['p95 duration', fmtDuration(m.p95_duration), ''],
    ];
    const box = clear($('cards'));
    for (const [label, value, kind] of cards) {
      box.append(el('div', { class: 'card ' + kind, data: { metric: label.toLowerCase().replace(/ /g, '-') } },
        el('div', { class: 'label', text: label }), el('div', { class: 'value', text: value === undefined ? 0 : value })));
    }
    let added = false;
    for (const name of Object.keys(m.by_name || {})) if (!state.names.has(name)) { state.names.add(name); added = true; }
    if (added) renderNameOptions();
  }
  function renderNameOptions() {
    const names = [...state.names].sort();
    for (const [id, current] of [['f-name', state.filters.name], ['d-name', $('d-name').value]]) {
      const select = clear($(id));
      select.append(el('option', { value: '', text: 'All tasks' }));
      for (const name of names) select.append(el('option', { value: name, text: name }));
      if (current && !state.names.has(current)) select.append(el('option', { value: current, text: current }));
      select.value = current || '';
    }
  }

  // ---- task table --------------------------------------------------------------------------
  function sortedRows() {
    const { key, dir } = state.sort;
    if (!key) return state.rows;
    const value = (r) => (key === 'created_at' ? r.created_at : r[key]);
    return [...state.rows].sort((a, b) => {
      const x = value(a); const y = value(b);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }
  function tagChips(tags) {
    return Object.entries(tags || {}).map(([k, v]) => el('span', { class: 'chip', text: k + '=' + v }));
  }
  function renderTable() {
    const body = clear($('task-rows'));
    for (const r of sortedRows()) {
      const attempts = r.attempt + (r.retries_used ? ' (' + r.retries_used + ' retried)' : '');
      const tr = el('tr', {
        data: { id: r.task_id, status: r.status },
        class: (state.selected === r.task_id ? 'selected ' : '') + (state.flash.has(r.task_id) ? 'flash' : ''),
        onclick: () => openDetail(r.task_id),
      },
      el('td', {}, badge(r.status)),
      el('td', { class: 'task-name', text: r.func_name }),
      el('td', { class: 'mono', title: r.task_id, text: shortId(r.task_id) }),
      el('td', {}, when(r.created_at)),
      el('td', { text: fmtDuration(r.duration) }),
      el('td', { text: attempts }),
      el('td', { text: r.queue }),
      el('td', {}, tagChips(r.tags)));
      body.append(tr);
    }
    state.flash.clear();
    $('task-empty').hidden = state.rows.length > 0;
    $('prev').disabled = state.page === 0;
    $('next').disabled = !state.nextCursor;
    $('page-info').textContent = 'Page ' + (state.page + 1) + ' · ' + state.rows.length + ' shown';
    for (const th of document.querySelectorAll('#task-table th[data-sort]')) {
      th.classList.toggle('sorted-asc', state.sort.key === th.dataset.sort && state.sort.dir === 1);
      th.classList.toggle('sorted-desc', state.sort.key === th.dataset.sort && state.sort.dir === -1);
    }
  }
  async function fetchPage() {
    try {
      const page = await api('GET', '?' + filterQuery({ cursor: state.cursors[state.page] }));
      state.rows = page.tasks;
      state.nextCursor = page.next_cursor;
      renderTable();
    } catch (e) { toast(e.message); }
  }
  function limit() { return parseInt(state.filters.limit, 10) || 50; }
  function matchesFilters(r) {
    const f = state.filters;
    if (f.status && r.status !== f.status) return false;
    if (f.name && r.func_name !== f.name) return false;
    return true;
  }
  function applyChanges(tasks, removed) {
    let changed = false;
    for (const id of removed) {
      const i = state.rows.findIndex((r) => r.task_id === id);
      if (i >= 0) { state.rows.splice(i, 1); changed = true; }
    }
    for (const t of tasks) {
      const i = state.rows.findIndex((r) => r.task_id === t.task_id);
      if (i >= 0) { state.rows[i] = t; state.flash.add(t.task_id); changed = true; }
      else if (state.page === 0 && matchesFilters(t)) {
        state.rows.push(t); state.flash.add(t.task_id); changed = true;
      }
    }
    if (changed) {
      state.rows.sort((a, b) => (a.task_id < b.task_id ? 1 : -1));
      if (state.rows.length > limit()) {
        state.rows.length = limit();
        state.nextCursor = state.rows[state.rows.length - 1].task_id;
      }
      renderTable();
    }
    const ids = new Set([...tasks.map((t) => t.task_id), ...removed]);
    if (state.selected && ids.has(state.selected)) refreshDetail();
    if (ids.size) liveRefreshTab();
  }

  // ---- live stream -------------------------------------------------------------------------
  let source = null;
  let retryDelay = 1000;
  function setLive(mode, text) {
    const live = $('live');
    live.className = 'live ' + mode;
    $('live-text').textContent = text;
  }
  function connect() {
    if (source) source.close();
    const qs = filterQuery();
    source = new EventSource(base + '/stream' + (qs ? '?' + qs : ''));
    setLive('', 'connecting…');
    source.addEventListener('open', () => { retryDelay = 1000; showLive(); });
    source.addEventListener('snapshot', (e) => onSnapshot(JSON.parse(e.data)));
    source.addEventListener('delta', (e) => onDelta(JSON.parse(e.data)));
    source.addEventListener('error', () => {
      if (source.readyState === EventSource.CLOSED) {
        setLive('off', 'disconnected');
        if (cfg.auth) api('GET', '/health').catch(() => {});
        setTimeout(connect, retryDelay);
        retryDelay = Math.min(retryDelay * 2, 30000);
      } else {
        setLive('off', 'reconnecting…');
      }
    });
  }
  function showLive() {
    if (state.paused) setLive('paused', 'paused · ' + state.pausedCount + ' update' + (state.pausedCount === 1 ? '' : 's'));
    else setLive('on', 'live');
  }
  function onSnapshot(data) {
    if (state.paused) {
      state.bufferedResync = true;
      state.buffered.clear();
      state.pausedCount += 1;
      state.metrics = data.metrics;
      showLive();
      return;
    }
    renderCards(data.metrics);
    if (state.page === 0) {
      state.rows = data.tasks;
      state.nextCursor = data.next_cursor;
      renderTable();
    } else {
      fetchPage();
    }
    if (state.selected) refreshDetail();
    liveRefreshTab();
    showLive();
  }
  function onDelta(data) {
    if (state.paused) {
      for (const t of data.tasks) state.buffered.set(t.task_id, t);
      for (const id of data.removed) state.buffered.set(id, null);
      if (state.buffered.size > 5000) { state.buffered.clear(); state.bufferedResync = true; }
      state.pausedCount += data.tasks.length + data.removed.length;
      state.metrics = data.metrics;
      showLive();
      return;
    }
    renderCards(data.metrics);
    applyChanges(data.tasks, data.removed);
  }
  function togglePause() {
    state.paused = !state.paused;
    $('pause').textContent = state.paused ? 'Resume' : 'Pause';
    if (!state.paused) {
      const resync = state.bufferedResync;
      const buffered = state.buffered;
      state.buffered = new Map();
      state.bufferedResync = false;
      state.pausedCount = 0;
      if (resync) { connect(); return; }
      renderCards(state.metrics);
      const tasks = []; const removed = [];
      for (const [id, t] of buffered) { if (t) tasks.push(t); else removed.push(id); }
      applyChanges(tasks, removed);
    }
    showLive();
  }

  // ---- detail panel ------------------------------------------------------------------------
  let detailLoading = false;
  let detailAgain = false;
  function openDetail(id) {
    state.selected = id;
    $('detail').hidden = false;
    for (const tr of document.querySelectorAll('#task-rows tr')) tr.classList.toggle('selected', tr.dataset.id === id);
    refreshDetail();
  }
  function closeDetail() {
    state.selected = null;
    $('detail').hidden = true;
    for (const tr of document.querySelectorAll('#task-rows tr.selected')) tr.classList.remove('selected');
  }
  async function refreshDetail() {
    if (detailLoading) { detailAgain = true; return; }
    const id = state.selected;
    if (!id) return;
    detailLoading = true;
    try {
      const record = await api('GET', '/' + encodeURIComponent(id));
      if (state.selected === id) renderDetail(record);
    } catch (e) {
      if (state.selected === id) {
        clear($('detail-body')).append(el('p', { class: 'muted', text: e.message }));
      }
    } finally {
      detailLoading = false;
      if (detailAgain) { detailAgain = false; refreshDetail(); }
    }
  }
  function kv(pairs) {
    const dl = el('dl', { class: 'kv' });
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === '') continue;
      dl.append(el('dt', { text: k }), el('dd', {}, v));
    }
    return dl;
  }
  function retryReason(r) {
    if (!FINISHED.has(r.status)) return 'Only a finished task can be retried; this one is ' + r.status + '.';
    if (r.source === 'spawn') return 'Started with spawn: an ad-hoc future has no stored arguments to run again.';
    return null;
  }
  function cancelReason(r) {
    if (FINISHED.has(r.status)) return 'Already finished (' + r.status + '): nothing to cancel.';
    if (r.status === 'running' && r.executor === 'blocking') return 'Running on the blocking pool: a synchronous task cannot be stopped.';
    return null;
  }
  function renderDetail(r) {
    $('d-title').textContent = r.func_name;
    const body = clear($('detail-body'));
    body.append(el('div', { class: 'actions' }, badge(r.status), el('span', { class: 'mono muted', text: r.task_id })));

    if (!cfg.read_only) {
      const retryWhy = retryReason(r);
      const cancelWhy = cancelReason(r);
      const retry = el('button', { id: 'retry-btn', class: 'btn primary', type: 'button', disabled: !!retryWhy, title: retryWhy || 'Run again with the same arguments' }, 'Retry');
      const cancel = el('button', { id: 'cancel-btn', class: 'btn danger', type: 'button', disabled: !!cancelWhy, title: cancelWhy || 'Cancel this task' }, 'Cancel');
      retry.addEventListener('click', async () => {
        retry.disabled = true;
        try {
          const out = await api('POST', '/' + encodeURIComponent(r.task_id) + '/retry');
          toast('Retried: new run ' + shortId(out.new_task_id));
          openDetail(out.new_task_id);
        } catch (e) { toast(e.message); refreshDetail(); }
      });
      cancel.addEventListener('click', async () => {
        cancel.disabled = true;
        try { await api('POST', '/' + encodeURIComponent(r.task_id) + '/cancel'); toast('Cancelled'); } catch (e) { toast(e.message); }
        refreshDetail();
      });
      const why = [retryWhy, cancelWhy].filter(Boolean);
      body.append(el('div', { class: 'actions' }, retry, cancel), why.length ? el('p', { class: 'why', id: 'action-why' }, why.join(' ')) : null);
    }

    const retryOf = r.retry_of ? el('a', { href: '#', class: 'mono', onclick: (e) => { e.preventDefault(); openDetail(r.retry_of); } }, r.retry_of) : null;
    body.append(el('h3', { text: 'Run' }), kv([
      ['Queue', r.queue], ['Priority', String(r.priority)], ['Executor', r.executor], ['Source', r.source],
      ['Instance', r.instance_id], ['Idempotency key', r.idempotency_key], ['Retry of', retryOf],
      ['Attempt', String(r.attempt)], ['Retries used', String(r.retries_used)],
    ]));
    body.append(el('h3', { text: 'Timing' }), kv([
      ['Created', fmtDate(r.created_at)], ['Run at', r.run_at ? fmtDate(r.run_at) : null],
      ['Started', r.start_time ? fmtDate(r.start_time) : null], ['Ended', r.end_time ? fmtDate(r.end_time) : null],
      ['Duration', r.duration === null ? null : fmtDuration(r.duration)],
    ]));
    const tags = Object.entries(r.tags || {});
    if (tags.length) body.append(el('h3', { text: 'Tags' }), el('div', { id: 'detail-tags' }, tagChips(r.tags)));
    if (cfg.display_args) {
      body.append(el('h3', { text: 'Arguments' }), el('pre', { class: 'block', id: 'detail-args' }, r.args === undefined ? 'none (ad-hoc task)' : fmtJson(r.args)));
    }
    if (r.result !== null && r.result !== undefined) body.append(el('h3', { text: 'Result' }), el('pre', { class: 'block', id: 'detail-result' }, fmtJson(r.result)));
    if (r.error) body.append(el('h3', { text: 'Error' }), el('pre', { class: 'block error', id: 'detail-error' }, r.error));
    if (r.stacktrace) body.append(el('h3', { text: 'Stack trace' }), el('pre', { class: 'block', id: 'detail-stack' }, r.stacktrace));
    body.append(el('h3', { text: 'Logs (' + (r.logs || []).length + ')' }));
    if (!r.logs || r.logs.length === 0) body.append(el('p', { class: 'muted', text: 'No log entries.' }));
    else {
      const table = el('table', { class: 'logs', id: 'detail-logs' });
      for (const entry of r.logs) {
        const fields = Object.entries(entry.fields || {}).map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v))).join(' ');
        table.append(el('tr', {},
          el('td', { class: 'mono muted', title: fmtDate(entry.timestamp), text: fmtTime(entry.timestamp) }),
          el('td', {}, badge(entry.level)),
          el('td', { class: 'log-message' }, entry.message, fields ? el('div', { class: 'fields mono', text: fields }) : null)));
      }
      body.append(table);
    }
  }

  // ---- dead letters ------------------------------------------------------------------------
  async function loadDead() {
    const params = new URLSearchParams({ status: $('d-status').value, limit: '250' });
    if ($('d-name').value) params.set('name', $('d-name').value);
    try {
      const page = await api('GET', '?' + params.toString());
      const body = clear($('dead-rows'));
      for (const r of page.tasks) {
        const box = el('input', { type: 'checkbox', class: 'd-pick', value: r.task_id, 'aria-label': 'Select ' + r.task_id, onchange: updateReplay });
        body.append(el('tr', { data: { id: r.task_id } },
          el('td', { onclick: (e) => e.stopPropagation() }, box),
          el('td', {}, badge(r.status)),
          el('td', { text: r.func_name }),
          el('td', { class: 'mono', title: r.task_id, text: shortId(r.task_id) }),
          el('td', {}, when(r.end_time || r.created_at)),
          el('td', { class: 'err-cell', title: r.error || '', text: r.error || '' })));
      }
      $('dead-empty').hidden = page.tasks.length > 0;
      $('d-all').checked = false;
      updateReplay();
    } catch (e) { toast(e.message); }
  }
  function picked() { return [...document.querySelectorAll('.d-pick:checked')].map((b) => b.value); }
  function updateReplay() {
    const n = picked().length;
    $('d-replay').disabled = n === 0;
    $('d-replay').textContent = n ? 'Replay ' + n + ' selected' : 'Replay selected';
  }
  async function replaySelected() {
    try {
      const out = await api('POST', '/bulk-retry', { task_ids: picked() });
      toast('Replayed: ' + out.dispatched + ' dispatched, ' + out.skipped + ' skipped');
    } catch (e) { toast(e.message); }
    loadDead();
  }
  async function replayWindow() {
    const params = new URLSearchParams({ since: $('d-window').value, status: $('d-status').value });
    if ($('d-name').value) params.set('name', $('d-name').value);
    try {
      const out = await api('POST', '/retry-failed?' + params.toString());
      toast('Replayed window: ' + out.dispatched + ' dispatched, ' + out.skipped + ' skipped');
    } catch (e) { toast(e.message); }
    loadDead();
  }

  // ---- queues, schedules, registered, audit ------------------------------------------------
  async function loadQueues() {
    try {
      const queues = await api('GET', '/queues');
      const body = $('queue-rows');
      const names = queues.map((q) => q.name).join('\n');
      if (body.dataset.names !== names) {
        clear(body);
        body.dataset.names = names;
        for (const q of queues) {
          const conc = el('input', { type: 'number', min: '1', placeholder: 'unlimited', 'aria-label': 'Concurrency of ' + q.name, class: 'q-conc' });
          const size = el('input', { type: 'number', min: '1', 'aria-label': 'Max size of ' + q.name, class: 'q-size' });
          conc.value = q.concurrency === null ? '' : String(q.concurrency);
          size.value = String(q.max_size);
          const save = el('button', { class: 'btn small mutation', type: 'button' }, 'Apply');
          save.addEventListener('click', async () => {
            const concurrency = conc.value === '' ? null : parseInt(conc.value, 10);
            try {
              await api('PATCH', '/queues/' + encodeURIComponent(q.name), { concurrency, max_size: parseInt(size.value, 10) });
              toast('Queue ' + q.name + ' resized');
            } catch (e) { toast(e.message); }
            body.dataset.names = '';
            loadQueues();
          });
          body.append(el('tr', { data: { queue: q.name } },
            el('td', { class: 'mono', text: q.name }), el('td', { class: 'q-pending' }), el('td', { class: 'q-running' }),
            el('td', {}, cfg.read_only ? el('span', { class: 'q-conc-ro' }) : conc),
            el('td', {}, cfg.read_only ? el('span', { class: 'q-size-ro' }) : size),
            el('td', { class: 'q-rejected' }), el('td', { class: 'q-started' }),
            el('td', {}, cfg.read_only ? null : save)));
        }
      }
      for (const q of queues) {
        const row = [...body.rows].find((tr) => tr.dataset.queue === q.name);
        if (!row) continue;
        row.querySelector('.q-pending').textContent = q.pending;
        row.querySelector('.q-running').textContent = q.running;
        row.querySelector('.q-rejected').textContent = q.rejected;
        row.querySelector('.q-started').textContent = q.started;
        const ro = row.querySelector('.q-conc-ro');
        if (ro) ro.textContent = q.concurrency === null ? 'unlimited' : q.concurrency;
        const rs = row.querySelector('.q-size-ro');
        if (rs) rs.textContent = q.max_size;
      }
    } catch (e) { toast(e.message); }
  }
  async function loadSchedules() {
    try {
      const list = await api('GET', '/schedules');
      const body = clear($('schedule-rows'));
      for (const s of list) {
        body.append(el('tr', {}, el('td', { text: s.name || s.id || '' }), el('td', { text: s.task || s.func_name || '' }),
          el('td', { text: s.next_run ? fmtDate(s.next_run) : '—' }), el('td', { class: 'mono', text: JSON.stringify(s) })));
      }
      $('schedule-empty').hidden = list.length > 0;
    } catch (e) { toast(e.message); }
  }
  async function loadRegistered() {
    try {
      const list = await api('GET', '/registered');
      const body = clear($('registered-rows'));
      for (const r of list) {
        const o = r.options;
        const flags = [o.persist && 'persist', o.requeue_on_interrupt && 'requeue_on_interrupt', o.jitter && 'jitter'].filter(Boolean);
        body.append(el('tr', {},
          el('td', { class: 'mono', text: r.name }), el('td', { text: o.queue }), el('td', { text: o.retries }),
          el('td', { text: fmtDuration(o.delay) + (o.max_delay ? ' (max ' + fmtDuration(o.max_delay) + ')' : '') }),
          el('td', { text: '×' + o.backoff }), el('td', { text: o.timeout ? fmtDuration(o.timeout) : '—' }),
          el('td', { text: o.priority }), el('td', {}, flags.map((f) => el('span', { class: 'chip', text: f }))),
          el('td', { class: 'mono muted', title: r.module, text: r.location })));
        if (!state.names.has(r.name)) { state.names.add(r.name); }
      }
      $('registered-empty').hidden = list.length > 0;
      renderNameOptions();
    } catch (e) { toast(e.message); }
  }
  async function loadAudit() {
    try {
      const list = await api('GET', '/audit');
      const body = clear($('audit-rows'));
      for (const a of list) {
        const ids = a.task_ids.length > 3 ? a.task_ids.slice(0, 3).map(shortId).join(', ') + ' +' + (a.task_ids.length - 3) : a.task_ids.map(shortId).join(', ');
        body.append(el('tr', {},
          el('td', { title: fmtDate(a.time), text: fmtDate(a.time) }), el('td', { text: a.user }), el('td', { text: a.action }),
          el('td', { class: 'mono', title: a.task_ids.join('\n'), text: ids || '—' }),
          el('td', {}, badge(String(a.status), a.status < 300 ? 'success' : 'failed')), el('td', { text: a.detail })));
      }
      $('audit-empty').hidden = list.length > 0;
    } catch (e) { toast(e.message); }
  }
  const loaders = { dead: loadDead, queues: loadQueues, schedules: loadSchedules, registered: loadRegistered, audit: loadAudit };
  let liveTimer = null;
  function liveRefreshTab() {
    if (state.tab !== 'queues' && state.tab !== 'audit') return;
    if (liveTimer) return;
    liveTimer = setTimeout(() => { liveTimer = null; (loaders[state.tab] || (() => {}))(); }, 1000);
  }
  function showTab(tab) {
    state.tab = tab;
    store.set('tab', tab);
    for (const b of document.querySelectorAll('.tab')) b.classList.toggle('active', b.dataset.tab === tab);
    for (const p of document.querySelectorAll('.panel')) p.hidden = p.id !== 'tab-' + tab;
    if (loaders[tab]) loaders[tab]();
  }

  // ---- CSV export --------------------------------------------------------------------------
  function csvCell(value) {
    let text = value === null || value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
    if (/^[=+\-@\t\r]/.test(text)) text = "'" + text; // no formulas in spreadsheets
    return '"' + text.replace(/"/g, '""') + '"';
  }
  async function exportCsv() {
    const columns = ['task_id', 'func_name', 'status', 'created_at', 'start_time', 'end_time', 'duration', 'attempt', 'retries_used', 'queue', 'priority', 'tags', 'idempotency_key', 'error', 'instance_id', 'retry_of'];
    const lines = [columns.join(',')];
    let cursor = null;
    try {
      for (let page = 0; page < 20; page += 1) {
        const params = new URLSearchParams(filterQuery());
        params.set('limit', '1000');
        if (cursor) params.set('cursor', cursor);
        const out = await api('GET', '?' + params.toString());
        for (const r of out.tasks) {
          lines.push(columns.map((c) => csvCell(c === 'tags' ? Object.entries(r.tags || {}).map(([k, v]) => k + '=' + v).join(';') : r[c])).join(','));
        }
        cursor = out.next_cursor;
        if (!cursor) break;
      }
    } catch (e) { toast(e.message); return; }
    const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv;charset=utf-8' });
    const link = el('a', { href: URL.createObjectURL(blob), download: 'tasks-' + new Date().toISOString().replace(/[:.]/g, '-') + '.csv' });
    document.body.append(link);
    link.click();
    setTimeout(() => { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
    toast('Exported ' + (lines.length - 1) + ' tasks');
  }

  // ---- theme -------------------------------------------------------------------------------
  function applyTheme(theme) {
    document.documentElement.dataset.theme = theme;
    $('theme').textContent = theme === 'dark' ? 'Light' : 'Dark';
  }
  function toggleTheme() {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    store.set('theme', next);
    applyTheme(next);
  }

  // ---- wiring ------------------------------------------------------------------------------
  function onFiltersChanged() {
    for (const key of FILTER_KEYS) state.filters[key] = $('f-' + key).value.trim();
    saveFilters();
    state.page = 0;
    state.cursors = [null];
    connect();
  }
  function init() {
    document.title = cfg.title;
    $('title').textContent = cfg.title;
    applyTheme(store.get('theme', matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light'));
    if (cfg.read_only) for (const node of document.querySelectorAll('.mutation')) node.hidden = true;
    if (cfg.auth) {
      $('user').textContent = cfg.user;
      $('logout').hidden = false;
      $('logout').addEventListener('click', async () => {
        try { await fetch(base + '/logout', { method: 'POST', credentials: 'same-origin', headers: { 'X-Taskflow-Request': '1' } }); } catch (_) { /* gone anyway */ }
        location.href = base + '/login';
      });
    }
    const status = $('f-status');
    for (const s of STATUSES) status.append(el('option', { value: s, text: s }));
    loadFilters();
    if (state.filters.name) state.names.add(state.filters.name);
    renderNameOptions();
    for (const key of FILTER_KEYS) $('f-' + key).value = state.filters[key];
    let typing = null;
    for (const key of FILTER_KEYS) {
      const input = $('f-' + key);
      const changed = () => {
        if ((state.filters[key] || '') === input.value.trim()) return;
        clearTimeout(typing);
        typing = setTimeout(onFiltersChanged, input.tagName === 'SELECT' ? 0 : 300);
      };
      input.addEventListener('input', changed);
      input.addEventListener('change', changed);
    }
    $('filters').addEventListener('submit', (e) => { e.preventDefault(); onFiltersChanged(); });
    $('f-clear').addEventListener('click', () => {
      for (const key of FILTER_KEYS) $('f-' + key).value = key === 'limit' ? '50' : '';
      onFiltersChanged();
    });
    for (const th of document.querySelectorAll('#task-table th[data-sort]')) {
      th.addEventListener('click', () => {
        const key = th.dataset.sort;
        if (state.sort.key !== key) state.sort = { key, dir: -1 };
        else if (state.sort.dir === -1) state.sort = { key, dir: 1 };
        else state.sort = { key: null, dir: -1 };
        store.set('sort', state.sort);
        renderTable();
      });
    }
    $('prev').addEventListener('click', () => {
      if (state.page === 0) return;
      state.page -= 1;
      state.cursors.pop();
      fetchPage();
    });
    $('next').addEventListener('click', () => {
      if (!state.nextCursor) return;
      state.cursors.push(state.nextCursor);
      state.page += 1;
      fetchPage();
    });
    $('export').addEventListener('click', exportCsv);
    $('pause').addEventListener('click', togglePause);
    $('theme').addEventListener('click', toggleTheme);
    $('detail-close').addEventListener('click', closeDetail);
    document.addEventListener('keydown', (e) => { if (e.key === 'Escape') closeDetail(); });
    for (const b of document.querySelectorAll('.tab')) b.addEventListener('click', () => showTab(b.dataset.tab));
    $('d-status').addEventListener('change', loadDead);
    $('d-name').addEventListener('change', loadDead);
    $('d-refresh').addEventListener('click', loadDead);
    $('d-all').addEventListener('change', () => {
      for (const b of document.querySelectorAll('.d-pick')) b.checked = $('d-all').checked;
      updateReplay();
    });
    $('d-replay').addEventListener('click', replaySelected);
    $('d-replay-window').addEventListener('click', replayWindow);
    setInterval(() => { if (!state.paused && state.tab === 'tasks') renderTable(); }, 15000);
    loadRegistered();
    showTab(store.get('tab', 'tasks'));
    connect();
  }
  init();
})();
