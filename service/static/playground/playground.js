// Stockade playground: talks to the native API (/api/v1) of the server that served it.
// Program output is only ever inserted as text (textContent), never as markup.
'use strict';

const API = '/api/v1';
const POLL_LIMIT = 60; // GET ?wait=true rounds after a POST whose own wait ran out
const INDENT = '    ';

const TEMPLATES = {
  python3: 'name = input()\nprint(f"Hello, {name}!")\n',
  cpp: '#include <iostream>\n#include <string>\n\nint main() {\n    std::string name;\n' +
    '    std::getline(std::cin, name);\n    std::cout << "Hello, " << name << "!\\n";\n}\n',
  c: '#include <stdio.h>\n\nint main(void) {\n    char name[100] = "";\n' +
    '    if (scanf("%99s", name) != 1) return 1;\n    printf("Hello, %s!\\n", name);\n' +
    '    return 0;\n}\n',
  java: 'import java.util.Scanner;\n\npublic class Main {\n' +
    '    public static void main(String[] args) {\n' +
    '        String name = new Scanner(System.in).nextLine();\n' +
    '        System.out.println("Hello, " + name + "!");\n    }\n}\n',
  javascript: "const name = require('fs').readFileSync(0, 'utf8').trim();\n" +
    'console.log(`Hello, ${name}!`);\n',
  go: 'package main\n\nimport "fmt"\n\nfunc main() {\n    var name string\n' +
    '    fmt.Scan(&name)\n    fmt.Printf("Hello, %s!\\n", name)\n}\n',
  rust: 'use std::io;\n\nfn main() {\n    let mut name = String::new();\n' +
    '    io::stdin().read_line(&mut name).unwrap();\n' +
    '    println!("Hello, {}!", name.trim());\n}\n',
  bash: 'read -r name\necho "Hello, $name!"\n',
  ruby: 'name = gets.strip\nputs "Hello, #{name}!"\n',
  perl: 'my $name = <STDIN>;\nchomp $name;\nprint "Hello, $name!\\n";\n',
  php: '<?php\n$name = trim(fgets(STDIN));\necho "Hello, $name!\\n";\n',
  lua: 'local name = io.read("l")\nprint("Hello, " .. name .. "!")\n',
};

const $ = (id) => document.getElementById(id);
const languages = new Map(); // id -> language from GET /languages
const sources = new Map(); // language id -> what the editor held for it
let currentLanguage = '';
let running = false;

function headers() {
  const h = { 'Content-Type': 'application/json', Accept: 'application/json' };
  const token = $('token').value.trim();
  if (token) h['X-Auth-Token'] = token;
  return h;
}

async function api(method, path, body) {
  const response = await fetch(API + path, {
    method,
    headers: headers(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try {
    data = await response.json();
  } catch (e) {
    data = { error: `HTTP ${response.status} without a JSON body` };
  }
  return { ok: response.ok, status: response.status, data };
}

function describeError(data) {
  if (!data || typeof data !== 'object') return 'unknown error';
  return Object.entries(data)
    .map(([field, rules]) => (field === 'error' ? String(rules)
      : `${field}: ${Array.isArray(rules) ? rules.join('; ') : rules}`))
    .join('. ');
}

// ---- languages and tiers ------------------------------------------------------------------

async function loadLanguages() {
  const select = $('language');
  const { ok, data } = await api('GET', '/languages');
  select.replaceChildren();
  if (!ok || !Array.isArray(data)) {
    select.append(new Option('Languages could not be loaded', ''));
    announce(`Languages could not be loaded: ${describeError(data)}`);
    return;
  }
  data.sort((a, b) => a.name.localeCompare(b.name));
  for (const lang of data) {
    languages.set(String(lang.id), lang);
    // Judge0's names carry the version already ("Python (3.11.2)").
    const named = !lang.version || lang.name.includes(lang.version);
    const label = `${lang.name}${named ? '' : ` (${lang.version})`}` +
      (lang.enabled ? '' : ' (switched off)');
    const option = new Option(label, String(lang.id));
    option.disabled = !lang.enabled;
    select.append(option);
  }
  const preferred = data.find((l) => l.key === 'python3' && l.enabled) || data.find((l) => l.enabled);
  if (preferred) select.value = String(preferred.id);
  switchLanguage();
}

function switchLanguage() {
  const editor = $('source');
  if (currentLanguage) sources.set(currentLanguage, editor.value);
  currentLanguage = $('language').value;
  const lang = languages.get(currentLanguage);
  editor.value = sources.get(currentLanguage) ?? (lang && TEMPLATES[lang.key]) ?? '';
}

async function loadTiers() {
  const { ok, data } = await api('GET', '/health');
  const offered = ok && Array.isArray(data.tiers) ? data.tiers : ['container'];
  for (const option of $('tier').options) {
    const served = offered.includes(option.value);
    option.disabled = !served;
    option.textContent = option.textContent.replace(/ — not offered here$/, '') +
      (served ? '' : ' — not offered here');
  }
  if ($('tier').selectedOptions[0]?.disabled) $('tier').value = 'container';
}

// ---- the editor: Tab indents, Esc then Tab leaves -------------------------------------------

function setupEditor() {
  const editor = $('source');
  let escaped = false;
  editor.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') {
      escaped = true;
      return;
    }
    if (event.key === 'Tab' && !escaped && !event.shiftKey && !event.ctrlKey &&
        !event.altKey && !event.metaKey) {
      event.preventDefault();
      // execCommand keeps the browser's undo history; setRangeText is the fallback.
      if (!document.execCommand('insertText', false, INDENT)) {
        editor.setRangeText(INDENT, editor.selectionStart, editor.selectionEnd, 'end');
      }
      return;
    }
    escaped = false;
  });
  editor.addEventListener('blur', () => { escaped = false; });
}

// ---- test cases -------------------------------------------------------------------------------

function addCase(input = '', expected = '') {
  const list = $('cases');
  const item = document.createElement('li');
  const n = list.children.length + 1;
  item.append(caseField('input', input), caseField('expected', expected));
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'remove-case';
  remove.textContent = 'Remove';
  remove.addEventListener('click', () => removeCase(item));
  item.append(remove);
  list.append(item);
  renumberCases();
  item.querySelector('textarea').focus();
  return n;
}

function caseField(kind, value) {
  const wrap = document.createElement('div');
  wrap.className = 'field';
  const label = document.createElement('label');
  const area = document.createElement('textarea');
  area.rows = 2;
  area.spellcheck = false;
  area.className = `case-${kind}`;
  area.value = value;
  wrap.append(label, area);
  return wrap;
}

function removeCase(item) {
  const next = item.nextElementSibling || item.previousElementSibling;
  item.remove();
  renumberCases();
  (next ? next.querySelector('textarea') : $('add-case')).focus();
  announce(`Test case removed; ${$('cases').children.length} left.`);
}

function renumberCases() {
  [...$('cases').children].forEach((item, i) => {
    const n = i + 1;
    for (const [kind, text] of [['input', 'Input'], ['expected', 'Expected output']]) {
      const area = item.querySelector(`.case-${kind}`);
      area.id = `case-${n}-${kind}`;
      const label = area.previousElementSibling;
      label.htmlFor = area.id;
      label.textContent = `Case ${n}: ${text}`;
    }
    item.querySelector('.remove-case').setAttribute('aria-label', `Remove test case ${n}`);
  });
  $('stdin-hint').textContent = $('cases').children.length
    ? 'Not used: the test cases below give the input.'
    : 'Used when there are no test cases.';
}

function readCases() {
  return [...$('cases').children].map((item, i) => {
    const expected = item.querySelector('.case-expected').value;
    return {
      name: String(i + 1),
      input: item.querySelector('.case-input').value,
      // Blank: run the case without judging its output.
      expected_output: expected === '' ? null : expected,
    };
  });
}

// ---- running and showing the result -----------------------------------------------------------

function announce(text) {
  $('summary').textContent = text;
}

function setRunning(on) {
  running = on;
  const button = $('run');
  button.setAttribute('aria-disabled', String(on));
  button.textContent = on ? 'Running…' : 'Run';
  $('result').setAttribute('aria-busy', String(on));
}

async function run() {
  if (running) return;
  if (!$('language').value) {
    announce('Pick a language first.');
    $('language').focus();
    return;
  }
  const body = {
    language_id: Number($('language').value),
    source_code: $('source').value,
    tier: $('tier').value,
  };
  const cases = readCases();
  if (cases.length) body.test_cases = cases;
  else body.stdin = $('stdin').value;
  setRunning(true);
  clearResult();
  announce('Running…');
  try {
    let { ok, data } = await api('POST', '/submissions?wait=true', body);
    if (!ok) {
      announce(`Not run: ${describeError(data)}`);
      return;
    }
    for (let i = 0; !data.final && i < POLL_LIMIT; i += 1) {
      ({ ok, data } = await api('GET', `/submissions/${encodeURIComponent(data.id)}?wait=true`));
      if (!ok) {
        announce(`The result could not be read: ${describeError(data)}`);
        return;
      }
    }
    render(data);
  } catch (error) {
    announce(`The server could not be reached: ${error.message}`);
  } finally {
    setRunning(false);
  }
}

function clearResult() {
  for (const id of ['facts', 'message-block', 'compile-block', 'case-table-block']) {
    $(id).hidden = true;
  }
  $('case-table').tBodies[0].replaceChildren();
  $('outputs').replaceChildren();
}

function formatTime(seconds) {
  return typeof seconds === 'number' ? `${seconds.toFixed(3)} s` : '–';
}

function formatMemory(bytes) {
  if (typeof bytes !== 'number') return '–';
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MiB`;
  return `${Math.round(bytes / 1024)} KiB`;
}

function verdictClass(verdict) {
  if (!verdict) return 'verdict-pending';
  return verdict === 'AC' ? 'verdict-ok' : 'verdict-bad';
}

function render(view) {
  const description = view.status ? view.status.description : 'Unknown';
  const verdict = $('verdict');
  verdict.textContent = view.verdict ? `${description} (${view.verdict})` : description;
  verdict.className = verdictClass(view.verdict);
  $('time').textContent = formatTime(view.time_s);
  $('memory').textContent = formatMemory(view.memory_bytes);
  $('ran-tier').textContent = view.tier || '–';
  $('facts').hidden = false;
  const cases = Array.isArray(view.cases) ? view.cases : [];
  let summary = `${description}: ${formatTime(view.time_s)}, ${formatMemory(view.memory_bytes)}`;
  if (cases.length > 1) {
    const passed = cases.filter((c) => c.verdict === 'AC').length;
    summary += `; ${passed} of ${cases.length} test cases accepted`;
  }
  if (!view.final) summary = `${description}: still not finished, try again later`;
  announce(`${summary}.`);
  showText('message-block', 'message', view.message);
  showText('compile-block', 'compile-output', view.compile_output);
  if (cases.length > 1) {
    const body = $('case-table').tBodies[0];
    for (const c of cases) {
      const row = body.insertRow();
      const cells = [c.name, c.status ? c.status.description : c.verdict,
        formatTime(c.time), formatMemory(c.memory)];
      for (const text of cells) row.insertCell().textContent = text;
      row.cells[1].className = verdictClass(c.verdict);
    }
    $('case-table-block').hidden = false;
  }
  cases.forEach((c) => $('outputs').append(caseOutput(c, cases.length > 1)));
}

function showText(blockId, preId, text) {
  $(preId).textContent = text || '';
  $(blockId).hidden = !text;
}

function caseOutput(c, several) {
  const wrap = document.createElement('div');
  const level = several ? 'h4' : 'h3';
  if (several) {
    wrap.className = 'case-output';
    const h = document.createElement('h3');
    h.textContent = `Case ${c.name}: ${c.status ? c.status.description : c.verdict}`;
    wrap.append(h);
  }
  for (const [title, text, cls] of [['Standard output', c.stdout, 'stdout'],
    ['Standard error', c.stderr, 'stderr']]) {
    if (cls === 'stderr' && !text) continue;
    const h = document.createElement(level);
    h.textContent = title;
    const pre = document.createElement('pre');
    pre.className = cls + (text ? '' : ' empty');
    pre.tabIndex = 0; // long output scrolls: let the keyboard reach it
    pre.textContent = text || '(empty)';
    wrap.append(h, pre);
  }
  return wrap;
}

// ---- wiring ---------------------------------------------------------------------------------

function start() {
  setupEditor();
  $('language').addEventListener('change', switchLanguage);
  $('add-case').addEventListener('click', () => addCase());
  $('run-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
  loadLanguages();
  loadTiers();
}

document.addEventListener('DOMContentLoaded', start);
