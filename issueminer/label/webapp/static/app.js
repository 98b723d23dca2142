// issueminer annotation app: keyboard-first labelling. No framework, no build step.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("picker-data").textContent);
  const mode = document.body.dataset.mode;
  const issueEl = document.getElementById("issue");
  const UNDONE_NOTE = "issueminer-undone";  // what an undo did, said on the page it opens
  const UNRESOLVED = "its final label is gone and the disagreement is open again";

  // a draft belongs to one database, round and person as well as one issue and page
  function draftKeyOf(scope, pageMode, issue) {
    return "issueminer-draft:" + scope + ":" + pageMode + ":" + issue;
  }

  // after an undo: the undone label waits as an unsaved edit of its issue (when this page
  // knows whose drafts these are), and the page that opens says what was undone
  function reopen(result, pageMode, note, scope) {
    if (scope) {
      try {
        localStorage.setItem(draftKeyOf(scope, pageMode, result.issue),
                             JSON.stringify(result.undone));
      } catch (e) { /* storage full or off: the note still says what was undone */ }
    }
    sessionStorage.setItem(UNDONE_NOTE, note);
    location.assign("/" + pageMode + "?" + new URLSearchParams({ issue: result.issue }));
  }

  if (!issueEl) {  // the "nothing left" page: an adjudicator may still undo a resolution
    const button = document.getElementById("undo-resolution");
    if (button) {
      const undoResolution = async () => {
        const response = await fetch("/api/unresolve", {
          method: "POST", headers: { "Content-Type": "application/json" }, body: "{}",
          credentials: "same-origin",
        });
        const result = await response.json().catch(() => ({}));
        if (!result.issue) return;
        reopen(result, "adjudicate",
               "undid your resolution of “" + result.title + "”: " + UNRESOLVED, "");
      };
      button.addEventListener("click", undoResolution);
      document.addEventListener("keydown", (event) => { if (event.key === "u") undoResolution(); });
    }
    document.body.dataset.ready = "1";
    return;
  }
  const uid = issueEl.dataset.uid;
  const form = document.getElementById("label-form");
  const statusEl = document.getElementById("status");
  const definitionEl = document.getElementById("definition");
  const labelEl = document.getElementById("current-label");
  const draftScope = labelEl.dataset.draftScope || "";
  const draftKey = draftKeyOf(draftScope, mode, uid);
  // the version of the saved label this form was opened with (none: no label yet)
  let version = labelEl.dataset.version ? Number(labelEl.dataset.version) : null;
  let baseline = null;  // the form as saved; a draft is kept only when it differs
  const SAVE_TIMEOUT_MS = 8000;

  const state = { issue_type: null, specific: null, symptom: null, fixes: [],
                  howto: null, memo: "" };

  // ---- history, for "back to the previous issue" ----
  const history = JSON.parse(sessionStorage.getItem("issueminer-history") || "[]");
  if (history[history.length - 1] !== uid) history.push(uid);
  sessionStorage.setItem("issueminer-history", JSON.stringify(history.slice(-200)));

  function url(path, params) {
    // who is signed in travels in the app's cookie, never in an address
    const text = new URLSearchParams(params || {}).toString();
    return text ? path + "?" + text : path;
  }

  function say(text, kind) {
    statusEl.textContent = text;
    statusEl.className = kind || "";
  }

  // ---- pickers: a filter box over a list, arrow keys move, Enter picks ----
  // ---- open coding: a name no list holds becomes a proposed category ----
  const PATH_SPLIT = /\s*(?:›|>)\s*/;  // "stage › leaf" or "stage > inner > leaf"
  const PROPOSED = "new category, proposed by you (not in the study file)";
  function pathOf(parts) { return parts.filter(Boolean).join(" › "); }
  function proposedSymptom(stage, inner, leaf) {
    return { stage, inner, leaf, path: pathOf([stage, inner, leaf]), definition: PROPOSED,
             proposal: true };
  }
  function typedSymptom(text) {
    const parts = text.split(PATH_SPLIT).filter(Boolean);
    const leaf = parts.pop();
    return proposedSymptom(parts[0] || null, parts[1] || null, leaf);
  }
  function proposedTopic(topic, subtopic) {
    return { topic, subtopic, path: pathOf([topic, subtopic]), definition: PROPOSED,
             proposal: true };
  }
  function typedTopic(text) {
    const parts = text.split(PATH_SPLIT).filter(Boolean);
    return proposedTopic(parts[0], parts[1] || null);
  }
  function typedFix(text) { return { name: text.trim(), definition: PROPOSED, proposal: true }; }

  // ---- ranking: what a filter text finds, best first ----
  // Tiers, best first, on the item's names (say a symptom's leaf and its path):
  //   EXACT       the name is the text               "hang" finds hang before hang and timeout
  //   PREFIX      the name starts with the text
  //   WORD_START  every typed word starts a word of the name (words are split at spaces,
  //               so "learning" inside "partition/learning" is not a word start)
  //   SUBSTRING   every typed word is somewhere in the name
  // then the same four tiers on the study file's aliases ("oom" finds out of memory), then
  // DEFINITION: every typed word starts a word of the definition. Ties keep the list's order.
  const EXACT = 0, PREFIX = 1, WORD_START = 2, SUBSTRING = 3, ALIAS = 4, DEFINITION = 8;
  function normal(text) { return (text || "").toLowerCase().replace(/\s+/g, " ").trim(); }
  function nameTier(name, query, words) {
    const text = normal(name);
    if (text === query) return EXACT;
    if (text.startsWith(query)) return PREFIX;
    const own = text.split(" ");
    if (words.every((w) => own.some((o) => o.startsWith(w)))) return WORD_START;
    if (words.every((w) => text.includes(w))) return SUBSTRING;
    return null;
  }
  function bestTier(names, query, words) {
    let best = null;
    for (const name of names) {
      const tier = nameTier(name, query, words);
      if (tier !== null && (best === null || tier < best.tier)) best = { tier, name };
    }
    return best;
  }
  // { tier, why } for an item the text finds, null for one it does not
  function match(item, names, query) {
    if (!query) return { tier: EXACT, why: "" };
    const words = query.split(" ");
    const byName = bestTier(names(item), query, words);
    if (byName) return { tier: byName.tier, why: "" };
    const byAlias = bestTier(item.aliases || [], query, words);
    if (byAlias) return { tier: ALIAS + byAlias.tier, why: "alias: " + byAlias.name };
    const defined = normal(item.definition).split(/[^\p{L}\p{N}]+/u);
    if (words.every((w) => defined.some((d) => d.startsWith(w)))) {
      return { tier: DEFINITION, why: "in its definition" };
    }
    return null;
  }
  function compareRanks(a, b) {  // arrays of numbers, the first difference decides
    for (let i = 0; i < Math.max(a.length, b.length); i++) {
      if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
    }
    return 0;
  }

  // fix patterns: those most often in final labels with the chosen symptom first, then
  // those most often in final labels overall, then the study file's order
  const fixOrder = data.fix_order || { overall: [], by_symptom: {} };
  function fixRank(fix) {
    const place = (names) => { const at = (names || []).indexOf(fix.name); return at < 0 ? 1e6 : at; };
    const leaf = state.symptom ? state.symptom.leaf : null;
    return [place(fixOrder.by_symptom[leaf]), place(fixOrder.overall)];
  }

  // the codebook entry of a picker item: examples and decision rules (GET /api/codebook)
  function codebookKey(item) {
    if (!item || item.proposal) return null;
    if (item.leaf) return "symptom:" + item.leaf;
    if (item.topic) return item.subtopic ? "howto_subtopic:" + item.topic + "/" + item.subtopic
                                         : "howto_topic:" + item.topic;
    return (data.issue_types.includes(item) ? "issue_type:" : "fix_pattern:") + item.name;
  }

  let pointer = { x: null, y: null };
  function makePicker(list, filterId, optionsId, valueId,
                      { multi, label, names, rank, onPick, isChosen, propose }) {
    const filter = document.getElementById(filterId);
    const options = document.getElementById(optionsId);
    const value = document.getElementById(valueId);
    let shown = [];
    let active = 0;
    function rows() {
      const query = normal(filter.value);
      const found = [];
      list.forEach((item, i) => {
        const hit = match(item, names || ((x) => [label(x)]), query);
        if (hit) found.push({ item, why: hit.why, rank: [hit.tier, ...(rank ? rank(item) : []), i] });
      });
      found.sort((a, b) => compareRanks(a.rank, b.rank));
      return found;
    }
    function highlight(i) {  // the keyboard or the pointer is on row i
      active = i;
      for (const [at, li] of [...options.children].entries()) li.classList.toggle("active", at === i);
      showDefinition(shown[i]);
    }
    function render() {
      const found = rows();
      shown = found.map((row) => row.item);
      const typed = filter.value.trim();
      if (data.open_coding && propose && typed &&
          !shown.some((item) => label(item).toLowerCase() === typed.toLowerCase())) {
        shown.push(propose(typed));
      }
      active = Math.min(active, Math.max(0, shown.length - 1));
      options.replaceChildren(...shown.map((item, i) => {
        const li = document.createElement("li");
        li.textContent = (item.proposal ? "propose: " : "") + label(item);
        if (item.proposal) li.classList.add("proposal");
        if (found[i] && found[i].why) li.dataset.why = found[i].why;  // shown by app.css
        if (i === active) li.classList.add("active");
        if (isChosen(item)) li.classList.add("chosen");
        // only a pointer that moves highlights: a list scrolled or redrawn under a resting
        // pointer leaves the keyboard's highlight alone
        li.addEventListener("mousemove", (event) => {
          if (event.screenX === pointer.x && event.screenY === pointer.y) return;
          pointer = { x: event.screenX, y: event.screenY };
          if (active !== i) highlight(i);
        });
        li.addEventListener("mousedown", (event) => { event.preventDefault(); active = i; pick(); });
        return li;
      }));
      showDefinition(shown[active]);
      const current = options.children[active];
      if (current) current.scrollIntoView({ block: "nearest" });
    }
    function pick() {
      const item = shown[active];
      if (!item) {
        // nothing matches: leave the field, so the next key is a shortcut again
        say("no match for “" + filter.value.trim() + "”", "info");
        filter.value = "";
        filter.blur();
        return;
      }
      onPick(item);
      if (!multi) { filter.value = ""; filter.blur(); }
      else render();  // the mark (✔) shows at once, whether picked by key or by mouse
      refresh();
    }
    filter.addEventListener("input", () => { active = 0; render(); });
    filter.addEventListener("focus", () => { options.classList.add("open"); render(); });
    filter.addEventListener("blur", () => options.classList.remove("open"));
    filter.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown") { highlight(Math.min(active + 1, shown.length - 1)); }
      else if (event.key === "ArrowUp") { highlight(Math.max(active - 1, 0)); }
      else if (event.key === "Enter") { pick(); }
      else if (event.key === "Escape") { if (!closeCodebook()) { filter.value = ""; filter.blur(); } }
      else if (event.key === "?") { openCodebook(shown[active]); }
      else return;
      const current = options.children[active];
      if (current) current.scrollIntoView({ block: "nearest" });
      event.preventDefault();
      event.stopPropagation();
    });
    return { filter, value, render };
  }

  // ---- the definition box: whatever the keyboard or the pointer is on ----
  let defined = null;  // the item the box shows, for `?`
  function showDefinition(item) {
    defined = item || null;
    if (!item) { definitionEl.textContent = ""; return; }
    const title = item.path || item.name;
    definitionEl.replaceChildren();
    const strong = document.createElement("strong");
    strong.textContent = title;
    definitionEl.append(strong, document.createTextNode(": " + (item.definition || "")));
    if (item.context) {
      const small = document.createElement("small");
      small.textContent = " (" + item.context + ")";
      definitionEl.append(small);
    }
    if (codebookKey(item)) {
      const hint = document.createElement("small");
      hint.className = "hint";
      hint.textContent = " ? codebook";
      definitionEl.append(hint);
    }
  }

  // ---- the codebook panel: `?` shows the entry of the highlighted category ----
  const codebookEl = document.getElementById("codebook");
  let codebook = null;  // the promise of GET /api/codebook, asked once per page
  function withCode(parent, text) {  // `name` as <code>, **words** as <strong>; no HTML
    for (const [i, part] of (text || "").split(/(`[^`]+`|\*\*[^*]+\*\*)/).entries()) {
      if (!part) continue;
      if (i % 2 === 0) { parent.append(document.createTextNode(part)); continue; }
      const el = document.createElement(part.startsWith("`") ? "code" : "strong");
      el.textContent = part.replace(/^(`|\*\*)|(`|\*\*)$/g, "");
      parent.append(el);
    }
    return parent;
  }
  function element(tag, text, className) {
    const el = document.createElement(tag);
    if (className) el.className = className;
    return withCode(el, text);
  }
  async function openCodebook(item) {
    const key = codebookKey(item);
    if (!key || !codebookEl) { say("no codebook entry for this", "info"); return; }
    if (!codebookEl.hidden && codebookEl.dataset.key === key) { closeCodebook(); return; }
    codebook = codebook || fetch(url("/api/codebook"), { credentials: "same-origin" })
      .then((response) => { if (!response.ok) throw new Error("HTTP " + response.status); return response.json(); });
    let book;
    try { book = await codebook; } catch (error) {
      codebook = null;
      say("codebook not loaded: " + error.message, "error");
      return;
    }
    const entry = book.entries[key] || { examples: [], rules: [] };
    const parts = [element("h2", item.path || item.name), element("p", item.definition || "")];
    parts.push(element("h3", "Examples"));
    if (entry.examples.length) {
      const list = document.createElement("ul");
      list.append(...entry.examples.map((text) => element("li", text)));
      parts.push(list);
    } else parts.push(element("p", "The codebook gives no example.", "none"));
    parts.push(element("h3", "Decision rules"));
    if (entry.rules.length) {
      const list = document.createElement("ol");
      for (const at of entry.rules) {
        const rule = book.rules[at];
        const li = document.createElement("li");
        li.value = at + 1;  // the rule's number in the codebook
        if (rule.title) li.append(element("strong", rule.title), document.createTextNode(" "));
        withCode(li, rule.text);
        list.append(li);
      }
      parts.push(list);
    } else parts.push(element("p", "No decision rule names it.", "none"));
    parts.push(element("p", "Esc or ? closes this.", "hint"));
    codebookEl.replaceChildren(...parts);
    codebookEl.dataset.key = key;
    codebookEl.hidden = false;
  }
  function closeCodebook() {
    if (!codebookEl || codebookEl.hidden) return false;
    codebookEl.hidden = true;
    return true;
  }

  const symptomPicker = makePicker(data.symptoms, "symptom-filter", "symptom-options",
    "symptom-value", { label: (s) => s.path, names: (s) => [s.leaf, s.path],
                       isChosen: (s) => state.symptom === s,
                       propose: typedSymptom,
                       onPick: (s) => { state.symptom = s; setType("fault"); } });
  const fixPicker = makePicker(data.fix_patterns, "fix-filter", "fix-options", "fix-value",
    { multi: true, label: (f) => f.name, rank: fixRank,
      isChosen: (f) => state.fixes.includes(f.name),
      propose: typedFix,
      onPick: (f) => {
        const at = state.fixes.indexOf(f.name);
        if (at >= 0) state.fixes.splice(at, 1); else state.fixes.push(f.name);
        setType("fault");
      } });
  const howtoPicker = makePicker(data.howto, "howto-filter", "howto-options", "howto-value",
    { label: (h) => h.path, names: (h) => [h.subtopic || h.topic, h.path],
      isChosen: (h) => state.howto === h, propose: typedTopic,
      onPick: (h) => { state.howto = h; setType("how-to question"); } });

  function setType(type) {
    state.issue_type = type;
    refresh();
  }

  function refresh() {
    for (const radio of form.querySelectorAll("input[name=issue_type]")) {
      radio.checked = radio.value === state.issue_type;
    }
    document.getElementById("specific").checked = state.specific === true;
    symptomPicker.value.textContent = state.symptom ? state.symptom.path : "—";
    fixPicker.value.textContent = state.fixes.length ? state.fixes.join(", ") : "—";
    howtoPicker.value.textContent = state.howto ? state.howto.path : "—";
    document.getElementById("fault-fields").classList.toggle("muted", state.issue_type !== "fault");
    document.getElementById("howto-fields").classList.toggle("muted",
      state.issue_type !== "how-to question");
    const typeInfo = data.issue_types.find((t) => t.name === state.issue_type);
    if (typeInfo && !document.activeElement.classList.contains("filter")) showDefinition(typeInfo);
    saveDraft();
  }

  function load(labels) {
    if (!labels) return;
    state.issue_type = labels.issue_type || null;
    // a draft saved before the flag was renamed still has its old name
    state.specific = labels.specific ?? labels.distributed_specific ?? null;
    state.symptom = data.symptoms.find((s) => s.leaf === labels.leaf_symptom &&
      s.stage === labels.stage && (s.inner || null) === (labels.inner_category || null)) ||
      (labels.leaf_symptom ? proposedSymptom(labels.stage || null, labels.inner_category || null,
                                             labels.leaf_symptom) : null);
    state.fixes = (labels.fix_patterns || []).slice();
    state.howto = data.howto.find((h) => h.topic === labels.howto_topic &&
      (h.subtopic || null) === (labels.howto_subtopic || null)) ||
      (labels.howto_topic ? proposedTopic(labels.howto_topic, labels.howto_subtopic || null)
                          : null);
    state.memo = labels.memo || "";
    document.getElementById("memo").value = state.memo;
  }

  function fields() {
    const fault = state.issue_type === "fault";
    const howto = state.issue_type === "how-to question";
    return {
      issue_type: state.issue_type,
      specific: fault ? state.specific === true : null,
      stage: fault && state.symptom ? state.symptom.stage : null,
      inner_category: fault && state.symptom ? state.symptom.inner : null,
      leaf_symptom: fault && state.symptom ? state.symptom.leaf : null,
      fix_patterns: fault ? state.fixes : [],
      howto_topic: howto && state.howto ? state.howto.topic : null,
      howto_subtopic: howto && state.howto ? state.howto.subtopic : null,
      memo: document.getElementById("memo").value || null,
    };
  }

  // ---- drafts: a closed tab or a failed save loses nothing typed ----
  function saveDraft() {
    if (baseline === null) return;  // still loading the page
    const now = JSON.stringify(fields());
    try {
      if (now === baseline) localStorage.removeItem(draftKey);
      else localStorage.setItem(draftKey, now);
    } catch (e) { /* storage full or off: the form itself still holds the edits */ }
  }
  function clearDraft() { localStorage.removeItem(draftKey); }

  const initial = JSON.parse(labelEl.textContent || "{}");
  load(initial);
  baseline = JSON.stringify(fields());
  const draft = localStorage.getItem(draftKey);
  if (draft && draft !== baseline) {
    load(JSON.parse(draft));
    say("restored your unsaved edits", "info");
  }
  const undoneNote = sessionStorage.getItem(UNDONE_NOTE);
  if (undoneNote) {
    sessionStorage.removeItem(UNDONE_NOTE);
    say(undoneNote, "info");
  }
  refresh();

  async function post(path, body) {
    // a server that does not answer must not leave "saving..." on screen for ever
    const timer = new AbortController();
    const timeout = setTimeout(() => timer.abort(), SAVE_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(url(path), {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body), credentials: "same-origin", signal: timer.signal,
      });
    } catch (e) {
      throw new Error(timer.signal.aborted
        ? "no answer from the app within " + SAVE_TIMEOUT_MS / 1000 + " s; try again"
        : "the app cannot be reached; try again");
    } finally {
      clearTimeout(timeout);
    }
    let payload = {};
    try { payload = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok || payload.ok === false) {
      const error = new Error(payload.error || ("HTTP " + response.status));
      error.payload = payload;
      throw error;
    }
    return payload;
  }

  // ---- a save based on a label changed elsewhere: both shown, the annotator chooses ----
  function describe(labels, status) {
    labels = labels || {};
    const lines = ["status: " + (status || "none")];
    if (labels.issue_type) lines.push("type: " + labels.issue_type);
    const symptom = [labels.stage, labels.inner_category, labels.leaf_symptom].filter(Boolean);
    if (symptom.length) lines.push("symptom: " + symptom.join(" › "));
    if ((labels.fix_patterns || []).length) lines.push("fix: " + labels.fix_patterns.join(", "));
    const topic = [labels.howto_topic, labels.howto_subtopic].filter(Boolean);
    if (topic.length) lines.push("how-to: " + topic.join(" › "));
    if (labels.memo) lines.push("memo: " + labels.memo);
    return lines.join("\n");
  }

  function showConflict(payload, status) {
    const box = document.getElementById("conflict");
    document.getElementById("conflict-saved").textContent =
      describe(payload.saved.labels, payload.saved.status);
    document.getElementById("conflict-mine").textContent = describe(fields(), status);
    box.hidden = false;
    say("NOT saved: " + payload.error, "error");
    document.getElementById("keep-saved").onclick = () => {
      version = payload.version;
      load(payload.saved.labels || {});
      baseline = JSON.stringify(fields());
      clearDraft();
      refresh();
      box.hidden = true;
      say("the saved label is back in the form", "info");
    };
    document.getElementById("keep-mine").onclick = () => {
      version = payload.version;
      box.hidden = true;
      submit(status);
    };
  }

  let busy = false;
  async function submit(status) {
    if (busy) return;
    busy = true;
    say("saving…");
    try {
      const result = await post("/api/save",
        { issue: uid, fields: fields(), status, based_on: version });
      clearDraft();
      say("saved", "ok");
      location.assign(result.next ? url("/label", { issue: result.next }) : url("/label"));
    } catch (error) {
      // the form stays as it is, so nothing typed is lost
      busy = false;
      if (error.payload && error.payload.stale) showConflict(error.payload, status);
      else say("NOT saved: " + error.message, "error");
    }
  }

  async function resolve() {
    if (busy) return;
    busy = true;
    say("saving…");
    try {
      await post("/api/resolve", { issue: uid, fields: fields() });
      clearDraft();
      location.assign(url("/adjudicate"));
    } catch (error) {
      say("NOT saved: " + error.message, "error");
      busy = false;
    }
  }

  async function undo() {
    try {
      const result = await post("/api/undo", {});
      if (!result.issue) { say("nothing to undo", "info"); return; }
      reopen(result, "label", "undid your " + (result.status || "") + " label of “" +
             result.title + "”: it is back in the form; edit it and save again", draftScope);
    } catch (error) {
      say("undo failed: " + error.message, "error");
    }
  }

  async function unresolve() {
    try {
      const result = await post("/api/unresolve", {});
      if (!result.issue) { say("no resolution to undo", "info"); return; }
      reopen(result, "adjudicate", "undid your resolution of “" + result.title + "”: " +
             UNRESOLVED, draftScope);
    } catch (error) {
      say("undo failed: " + error.message, "error");
    }
  }

  function back() {
    history.pop();
    const previous = history.pop();
    sessionStorage.setItem("issueminer-history", JSON.stringify(history));
    if (previous) location.assign(url("/" + (mode === "adjudicate" ? "adjudicate" : "label"),
                                      { issue: previous }));
    else say("no previous issue", "info");
  }

  function takeSuggestion(index) {
    const item = document.querySelectorAll("#suggestions li")[index];
    if (!item) return;
    const target = item.dataset.target;
    const label = item.dataset.label;
    if (target === "issue_type") setType(label);
    else if (target === "fix_patterns") {
      if (!state.fixes.includes(label)) state.fixes.push(label);
      setType("fault");
    }
    else if (target === "howto_topic") {
      state.howto = data.howto.find((h) => h.topic === label && !h.subtopic) || state.howto;
      setType("how-to question");
    } else {  // leaf_symptom (rounds.SUGGESTED_TARGETS)
      state.symptom = data.symptoms.find((s) => s.leaf === label) || state.symptom; setType("fault");
    }
  }

  function takeSide(index) {
    const sides = JSON.parse(document.getElementById("sides").textContent);
    if (sides[index]) { load(sides[index].labels); refresh(); }
  }

  // ---- keyboard ----
  document.addEventListener("keydown", (event) => {
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName) &&
      document.activeElement.type !== "radio" && document.activeElement.type !== "checkbox";
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      if (mode === "adjudicate") resolve(); else submit("done");
      return;
    }
    if (event.key === "Escape") { if (!closeCodebook()) document.activeElement.blur(); return; }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    const focus = (id) => { event.preventDefault(); document.getElementById(id).focus(); };
    switch (event.key) {
      case "1": setType("fault"); break;
      case "2": setType("how-to question"); break;
      case "3": setType("not relevant"); break;
      case "d": state.specific = !(state.specific === true); setType("fault"); break;
      case "/": focus("symptom-filter"); break;
      case "x": focus("fix-filter"); break;
      case "t": focus("howto-filter"); break;
      case "m": focus("memo"); break;
      case "s": if (mode === "adjudicate") resolve(); else submit("done"); break;
      case "p": if (mode !== "adjudicate") submit("pending"); break;
      case "k": if (mode !== "adjudicate") submit("skipped"); break;
      case "u": if (mode === "adjudicate") unresolve(); else undo(); break;
      case "h": {  // the history panel: open it and put the keyboard on its newest entry
        const panel = document.getElementById("history");
        if (panel) { panel.open = true; panel.querySelector("a").focus(); }
        break;
      }
      case "b": back(); break;
      case "?": if (!closeCodebook()) openCodebook(defined); break;
      case "7": case "8": case "9": takeSuggestion(Number(event.key) - 7); break;
      case "a": if (mode === "adjudicate") takeSide(0); break;
      case "o": if (mode === "adjudicate") takeSide(1); break;
      default: return;
    }
  });

  // ---- mouse, for those who prefer it ----
  for (const radio of form.querySelectorAll("input[name=issue_type]")) {
    radio.addEventListener("change", () => setType(radio.value));
  }
  document.getElementById("specific").addEventListener("change", (event) => {
    state.specific = event.target.checked; refresh();
  });
  document.getElementById("memo").addEventListener("input", saveDraft);
  const on = (id, handler) => { const el = document.getElementById(id); if (el) el.addEventListener("click", handler); };
  on("save", () => submit("done"));
  on("pending", () => submit("pending"));
  on("skip", () => submit("skipped"));
  on("undo", mode === "adjudicate" ? unresolve : undo);
  on("back", back);
  on("resolve", resolve);
  for (const side of document.querySelectorAll(".side")) {
    side.addEventListener("click", () => takeSide(Number(side.dataset.index)));
  }
  document.body.dataset.ready = "1"; // keys work from here on (tests wait for this)
})();
