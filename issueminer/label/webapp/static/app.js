// issueminer annotation app: keyboard-first labelling. No framework, no build step.
"use strict";

(function () {
  const data = JSON.parse(document.getElementById("picker-data").textContent);
  const mode = document.body.dataset.mode;
  const issueEl = document.getElementById("issue");
  if (!issueEl) return; // the "nothing left" page
  const uid = issueEl.dataset.uid;
  const form = document.getElementById("label-form");
  const statusEl = document.getElementById("status");
  const definitionEl = document.getElementById("definition");
  const draftKey = "issueminer-draft:" + mode + ":" + uid;

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

  function makePicker(list, filterId, optionsId, valueId,
                      { multi, label, onPick, isChosen, propose }) {
    const filter = document.getElementById(filterId);
    const options = document.getElementById(optionsId);
    const value = document.getElementById(valueId);
    let shown = [];
    let active = 0;
    function render() {
      const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
      shown = list.filter((item) => words.every((w) => label(item).toLowerCase().includes(w)));
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
        if (i === active) li.classList.add("active");
        if (isChosen(item)) li.classList.add("chosen");
        li.addEventListener("mousedown", (event) => { event.preventDefault(); active = i; pick(); });
        return li;
      }));
      showDefinition(shown[active]);
      const current = options.children[active];
      if (current) current.scrollIntoView({ block: "nearest" });
    }
    function pick() {
      const item = shown[active];
      if (!item) return;
      onPick(item);
      if (!multi) { filter.value = ""; filter.blur(); }
      refresh();
    }
    filter.addEventListener("input", () => { active = 0; render(); });
    filter.addEventListener("focus", () => { options.classList.add("open"); render(); });
    filter.addEventListener("blur", () => options.classList.remove("open"));
    filter.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown") { active = Math.min(active + 1, shown.length - 1); render(); }
      else if (event.key === "ArrowUp") { active = Math.max(active - 1, 0); render(); }
      else if (event.key === "Enter") { pick(); }
      else if (event.key === "Escape") { filter.value = ""; filter.blur(); }
      else return;
      event.preventDefault();
      event.stopPropagation();
    });
    return { filter, value, render };
  }

  function showDefinition(item) {
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
  }

  const symptomPicker = makePicker(data.symptoms, "symptom-filter", "symptom-options",
    "symptom-value", { label: (s) => s.path, isChosen: (s) => state.symptom === s,
                       propose: typedSymptom,
                       onPick: (s) => { state.symptom = s; setType("fault"); } });
  const fixPicker = makePicker(data.fix_patterns, "fix-filter", "fix-options", "fix-value",
    { multi: true, label: (f) => f.name, isChosen: (f) => state.fixes.includes(f.name),
      propose: typedFix,
      onPick: (f) => {
        const at = state.fixes.indexOf(f.name);
        if (at >= 0) state.fixes.splice(at, 1); else state.fixes.push(f.name);
        setType("fault");
      } });
  const howtoPicker = makePicker(data.howto, "howto-filter", "howto-options", "howto-value",
    { label: (h) => h.path, isChosen: (h) => state.howto === h, propose: typedTopic,
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
    try { localStorage.setItem(draftKey, JSON.stringify(fields())); } catch (e) { /* full */ }
  }
  function clearDraft() { localStorage.removeItem(draftKey); }

  const initial = JSON.parse(document.getElementById("current-label").textContent || "{}");
  const draft = localStorage.getItem(draftKey);
  load(draft ? JSON.parse(draft) : initial);
  if (draft) say("restored your unsaved edits", "info");
  refresh();

  async function post(path, body) {
    const response = await fetch(url(path), {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body), credentials: "same-origin",
    });
    let payload = {};
    try { payload = await response.json(); } catch (e) { /* not JSON */ }
    if (!response.ok || payload.ok === false) {
      throw new Error(payload.error || ("HTTP " + response.status));
    }
    return payload;
  }

  let busy = false;
  async function submit(status) {
    if (busy) return;
    busy = true;
    say("saving…");
    try {
      const result = await post("/api/save", { issue: uid, fields: fields(), status });
      clearDraft();
      say("saved", "ok");
      location.assign(result.next ? url("/label", { issue: result.next }) : url("/label"));
    } catch (error) {
      // the form stays as it is, so nothing typed is lost
      say("NOT saved: " + error.message, "error");
      busy = false;
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
      if (result.issue) location.assign(url("/label", { issue: result.issue }));
      else say("nothing to undo", "info");
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
    if (event.key === "Escape") { document.activeElement.blur(); return; }
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
      case "u": if (mode !== "adjudicate") undo(); break;
      case "b": back(); break;
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
  on("undo", undo);
  on("back", back);
  on("resolve", resolve);
  for (const side of document.querySelectorAll(".side")) {
    side.addEventListener("click", () => takeSide(Number(side.dataset.index)));
  }
  document.body.dataset.ready = "1"; // keys work from here on (tests wait for this)
})();
