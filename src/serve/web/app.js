// The upload page's behaviour: take an image (picker, camera, drag and drop, paste), send it to
// /api/predict with the coloured heatmap, show the classes and the heatmap over the photo at a
// chosen opacity (stacked images: CSS opacity is the same alpha blend the server does), and ask
// again for another method or class. No framework, no network access beyond this server.
(() => {
  "use strict";
  const CONFIG = JSON.parse(document.getElementById("dermal-config").textContent);
  const $ = (id) => document.getElementById(id);
  const MAX_SIDE = 2048;  // larger photos are shrunk in the browser before upload

  const state = {
    lang: pickLanguage(),
    blob: null,          // what we upload (the file, or a shrunk copy)
    photoUrl: null,
    result: null,        // the last /api/predict answer
    method: CONFIG.method,
    target: "top",
    showHeat: true,
    busy: false,
    force: false,        // "analyse anyway": past a failed lesion check
  };

  function pickLanguage() {
    const asked = new URLSearchParams(location.search).get("lang");
    if (asked && I18N[asked]) return asked;
    try {
      const saved = localStorage.getItem("dermal.lang");
      if (saved && I18N[saved]) return saved;
    } catch (e) { /* storage can be off */ }
    return I18N[CONFIG.lang] ? CONFIG.lang : "en";
  }

  function t(key, vars = {}) {
    const text = (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;
    return text.replace(/\{(\w+)\}/g, (_, k) => (k in vars ? String(vars[k]) : ""));
  }

  function className(entry) {
    return (state.lang === "vi" && CLASS_NAMES_VI[entry.label]) || entry.name || entry.label;
  }

  function applyLanguage() {
    document.documentElement.lang = state.lang;
    for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t, { mb: CONFIG.max_upload_mb });
    for (const b of document.querySelectorAll("[data-lang]")) b.classList.toggle("on", b.dataset.lang === state.lang);
    $("model-note").textContent = t("model_note", { name: CONFIG.model });
    if (state.result) render(state.result);
  }

  function setStatus(text, kind = "") {
    const s = $("status");
    s.textContent = text;
    s.className = "status " + kind;
  }

  function setBusy(on, text) {
    state.busy = on;
    $("busy").hidden = !on;
    document.body.classList.toggle("working", on);
    if (on) setStatus(text);
  }

  // Photos from phone cameras are large: shrink them to MAX_SIDE (the model sees 192 px anyway).
  // createImageBitmap applies the EXIF orientation, as the server does.
  async function prepare(file) {
    if (!file || !(file.type.startsWith("image/") || file.type === "")) throw new Error(t("not_image"));
    let bitmap = null;
    try {
      bitmap = await createImageBitmap(file);
    } catch (e) {
      bitmap = null;  // a format the browser cannot read: let the server judge it
    }
    const limit = CONFIG.max_upload_mb * 1024 * 1024;
    if (!bitmap || (Math.max(bitmap.width, bitmap.height) <= MAX_SIDE && file.size <= limit)) {
      if (file.size > limit) throw new Error(t("too_big", { mb: CONFIG.max_upload_mb }));
      return file;
    }
    const scale = Math.min(1, MAX_SIDE / Math.max(bitmap.width, bitmap.height));
    const canvas = document.createElement("canvas");
    canvas.width = Math.round(bitmap.width * scale);
    canvas.height = Math.round(bitmap.height * scale);
    canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
    return await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.92));
  }

  async function takeFile(file) {
    if (!file || state.busy) return;
    try {
      state.blob = await prepare(file);
    } catch (e) {
      setStatus(e.message, "error");
      return;
    }
    if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
    state.photoUrl = URL.createObjectURL(state.blob);
    state.result = null;
    state.target = "top";
    state.force = false;
    $("not-lesion").hidden = true;
    $("photo").src = state.photoUrl;
    $("heat").removeAttribute("src");
    $("bars").innerHTML = "";
    $("caption").textContent = "";
    $("time").textContent = "";
    $("result").hidden = false;
    document.body.classList.add("has-result");
    analyse(t("analysing"));
  }

  async function analyse(message) {
    if (!state.blob) return;
    setBusy(true, message);
    const params = new URLSearchParams({
      gradcam: state.showHeat ? "true" : "false", heatmap: "true", overlay: "false",
      top_k: "100", method: state.method, class: state.target,
    });
    if (state.force) params.set("force", "1");
    const form = new FormData();
    form.append("image", state.blob, "image");
    const started = performance.now();
    let res;
    try {
      res = await fetch("/api/predict?" + params, { method: "POST", body: form });
    } catch (e) {
      setBusy(false);
      setStatus(t("network"), "error");
      return;
    }
    let body = null;
    try {
      body = await res.json();
    } catch (e) { /* not JSON: reported below */ }
    setBusy(false);
    if (res.status === 503) {
      const wait = Math.min(30, parseInt(res.headers.get("Retry-After") || "2", 10) || 2);
      setStatus(t("busy", { s: wait }), "warn");
      setTimeout(() => analyse(message), wait * 1000);
      return;
    }
    if (!res.ok || !body) {
      setStatus(t("failed", { msg: (body && body.error) || res.status + " " + res.statusText }), "error");
      return;
    }
    body.round_trip_ms = performance.now() - started;
    state.result = body;
    setStatus("");
    render(body);
  }

  function percent(p) {
    const v = p * 100;
    return (v >= 10 || v === 0 ? v.toFixed(0) : v.toFixed(1)) + "%";
  }

  // A failed lesion check withholds the diagnosis: say so, offer to analyse anyway.
  function renderCheck(r) {
    const c = r.lesion_check || {};
    $("not-lesion").hidden = !r.diagnosis_withheld;
    $("result").hidden = !!r.diagnosis_withheld;
    const note = $("check-note");
    note.hidden = true;
    if (!r.diagnosis_withheld && c.available && c.passed === false) {
      note.textContent = t("check_warning");
      note.className = "check-note warn";
      note.hidden = false;
    } else if (!r.diagnosis_withheld && c.available === false && c.mode !== "off") {
      note.textContent = t("check_unavailable");
      note.className = "check-note";
      note.hidden = false;
    }
    return !r.diagnosis_withheld;
  }

  function render(r) {
    if (!renderCheck(r)) return;
    const bars = $("bars");
    bars.innerHTML = "";
    r.top.forEach((c, i) => {
      const li = document.createElement("li");
      li.className = "bar" + (i === 0 ? " first" : "") + (c.malignant ? " malignant" : "");
      li.dataset.label = c.label;
      const head = document.createElement("div");
      head.className = "bar-head";
      const name = document.createElement("span");
      name.className = "bar-name";
      name.textContent = className(c);
      const code = document.createElement("span");
      code.className = "code";
      code.textContent = c.label;
      name.append(" ", code);
      if (c.malignant) {
        const tag = document.createElement("span");
        tag.className = "tag";
        tag.textContent = t("malignant");
        name.append(" ", tag);
      }
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = percent(c.probability);
      head.append(name, value);
      const track = document.createElement("div");
      track.className = "track";
      const fill = document.createElement("div");
      fill.className = "fill";
      fill.style.width = Math.max(0.5, c.probability * 100) + "%";
      track.append(fill);
      li.append(head, track);
      bars.append(li);
    });

    const klass = $("klass");
    klass.innerHTML = "";
    klass.append(new Option(t("top_class", { name: className(r.top[0]) }), "top"));
    for (const c of r.top) klass.append(new Option(className(c) + " (" + percent(c.probability) + ")", c.label));
    klass.value = state.target;

    const g = r.gradcam;
    if (g && g.heatmap_png) {
      $("heat").src = "data:image/png;base64," + g.heatmap_png;
      const entry = r.top.find((c) => c.label === g.class) || { label: g.class, name: g.class_name };
      $("caption").textContent = t("caption", { name: className(entry) });
    } else {
      $("heat").removeAttribute("src");
      $("caption").textContent = t("no_heatmap");
    }
    updateHeat();
    const server = r.timings_ms ? r.timings_ms.total : 0;
    $("time").textContent = t("time", { ms: Math.round(r.round_trip_ms || server), server: server.toFixed(1) });
  }

  function updateHeat() {
    const v = $("opacity").value;
    $("opacity-value").textContent = v + "%";
    const heat = $("heat");
    heat.style.opacity = state.showHeat && heat.getAttribute("src") ? String(v / 100) : "0";
    $("show-overlay").classList.toggle("on", state.showHeat);
    $("show-original").classList.toggle("on", !state.showHeat);
    $("show-overlay").setAttribute("aria-pressed", String(state.showHeat));
    $("show-original").setAttribute("aria-pressed", String(!state.showHeat));
  }

  // The photo with the heatmap at the chosen opacity, as a PNG file.
  function download() {
    const photo = $("photo"), heat = $("heat");
    if (!photo.naturalWidth) return;
    const canvas = document.createElement("canvas");
    canvas.width = heat.naturalWidth || photo.naturalWidth;
    canvas.height = heat.naturalHeight || photo.naturalHeight;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(photo, 0, 0, canvas.width, canvas.height);
    if (state.showHeat && heat.naturalWidth) {
      ctx.globalAlpha = $("opacity").value / 100;
      ctx.drawImage(heat, 0, 0, canvas.width, canvas.height);
    }
    const a = document.createElement("a");
    a.download = "dermal-heatmap.png";
    a.href = canvas.toDataURL("image/png");
    a.click();
  }

  function setup() {
    const methods = $("method");
    for (const m of CONFIG.methods) methods.append(new Option(m.label, m.name));
    methods.value = state.method;
    methods.addEventListener("change", () => { state.method = methods.value; analyse(t("explaining")); });
    $("klass").addEventListener("change", (e) => { state.target = e.target.value; analyse(t("explaining")); });
    $("opacity").addEventListener("input", updateHeat);
    $("show-original").addEventListener("click", () => { state.showHeat = false; updateHeat(); });
    $("show-overlay").addEventListener("click", () => {
      state.showHeat = true;
      if (state.result && !state.result.gradcam) analyse(t("explaining"));
      updateHeat();
    });
    $("download").addEventListener("click", download);
    $("again").addEventListener("click", () => { $("file").value = ""; $("file").click(); });
    $("other").addEventListener("click", () => { $("file").value = ""; $("file").click(); });
    $("anyway").addEventListener("click", () => { state.force = true; analyse(t("analysing")); });
    for (const id of ["file", "camera"])
      $(id).addEventListener("change", (e) => takeFile(e.target.files && e.target.files[0]));

    const drop = $("drop");
    drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); $("file").click(); } });
    for (const type of ["dragenter", "dragover"])
      drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add("over"); });
    for (const type of ["dragleave", "drop"])
      drop.addEventListener(type, () => drop.classList.remove("over"));
    drop.addEventListener("drop", (e) => { e.preventDefault(); takeFile(e.dataTransfer.files[0]); });
    // Dropping beside the target must not make the browser navigate away to the file.
    window.addEventListener("dragover", (e) => e.preventDefault());
    window.addEventListener("drop", (e) => e.preventDefault());
    document.addEventListener("paste", (e) => {
      const file = [...(e.clipboardData ? e.clipboardData.files : [])].find((f) => f.type.startsWith("image/"));
      if (file) { e.preventDefault(); takeFile(file); }
    });

    for (const b of document.querySelectorAll("[data-lang]"))
      b.addEventListener("click", () => {
        state.lang = b.dataset.lang;
        try { localStorage.setItem("dermal.lang", state.lang); } catch (e) { /* ignore */ }
        applyLanguage();
      });
    state.showHeat = CONFIG.gradcam;
    applyLanguage();
    updateHeat();
  }

  setup();
})();
