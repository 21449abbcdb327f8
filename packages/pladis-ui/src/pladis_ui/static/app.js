// The page's script: fills the defaults from /api/info, sends a tab's request to /api/jobs, follows
// its progress and shows the images with their settings, timings and sidecar links.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let tracked = null; // the job the status bar follows

function element(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

async function loadInfo() {
  info = await (await fetch("/api/info")).json();
  const model = info.model;
  $("model").textContent = `${info.caption} · ${model.pipeline_class}` +
    (model.embedded ? ` · ${model.embedded_description}` : "");
  for (const [name, value] of Object.entries(info.defaults)) {
    const input = $(name);
    if (input && value !== null && value !== undefined) input.value = String(value);
  }
  for (const kind of ["pag", "seg"]) {
    const option = document.querySelector(`#guidance option[value="${kind}"]`);
    option.disabled = !info.guidance[kind];
    if (!info.guidance[kind]) option.textContent += " (not available for this model)";
  }
  $("layer-help").textContent = `Layers: "all"` +
    (info.layer_groups.length ? `, or groups such as ${info.layer_groups.join(", ")} ("mid,up")` : "") +
    `, or block ranges ("0-9") for DiTs. Steps: at most ${info.limits.max_steps}.`;
  showGuidance();
}

function showGuidance() {
  const kind = $("guidance").value;
  for (const label of document.querySelectorAll("[data-guidance]")) label.hidden = label.dataset.guidance !== kind;
}

function selectTab(tab) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  for (const panel of document.querySelectorAll(".tab")) panel.hidden = panel.id !== `tab-${tab}`;
  for (const label of document.querySelectorAll("label[data-tab]")) {
    label.hidden = !label.dataset.tab.split(" ").includes(tab);
  }
}

function fields(kind) {
  const values = { kind };
  for (const input of $("settings").elements) {
    if (!input.name || input.closest("[hidden]")) continue;
    values[input.name] = input.value;
  }
  return values;
}

function showError(message, field) {
  for (const node of document.querySelectorAll(".invalid")) node.classList.remove("invalid");
  const box = $("error");
  box.hidden = !message;
  box.textContent = message || "";
  if (field && $(field)) $(field).classList.add("invalid");
}

async function submit(kind) {
  showError("");
  let response;
  try {
    response = await fetch("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(fields(kind)),
    });
  } catch (error) {
    showError(`the server does not answer (${error})`);
    return;
  }
  const body = await response.json();
  if (!response.ok) {
    showError(body.error, body.field);
    return;
  }
  tracked = body.id;
  $(`result-${kind}`).replaceChildren();
  follow(body);
}

function follow(job) {
  if (job.id !== tracked) return;
  $("status").hidden = false;
  $("progress").value = job.progress;
  const where = job.status === "queued" ? ` (${job.position} request(s) ahead)` : "";
  $("status-text").textContent = `${job.kind}: ${job.status}${where} ${Math.round(job.progress * 100)}%` +
    (job.message ? ` — ${job.message}` : "");
  $("cancel").hidden = !["queued", "running"].includes(job.status);
  if (["queued", "running"].includes(job.status)) {
    setTimeout(async () => follow(await (await fetch(`/api/jobs/${job.id}`)).json()), 200);
  } else if (job.status === "done") {
    RENDER[job.kind](job);
  } else if (job.status === "failed") {
    showError(job.message);
  }
}

function fileUrl(job, name) {
  return `/files/${job.id}/${encodeURIComponent(name)}`;
}

function details(entries) {
  const list = element("dl");
  for (const [key, value] of entries) {
    list.append(element("dt", { text: key }), element("dd", { text: String(value) }));
  }
  return list;
}

function sidecarLink(job, name) {
  return element("a", { href: fileUrl(job, name), download: name, class: "sidecar", text: `sidecar ${name}` });
}

function settingsOf(pladis) {
  return pladis.enabled
    ? [["λ", pladis.scale], ["α", pladis.alpha], ["temperature", pladis.temperature],
      ["layers", JSON.stringify(pladis.layers)], ["window", `${pladis.start}–${pladis.end}`]]
    : [["PLADIS", "off"]];
}

const RENDER = {
  compare(job) {
    const target = $("result-compare");
    for (const image of job.result.images) {
      const variant = image.variant === "baseline" ? "off" : "on";
      const caption = element("figcaption", {}, element("strong", { text: image.label }),
        details([...settingsOf(image.settings), ["layers replaced", image.pladis_layers],
          ["generate", `${image.generate_s.toFixed(3)} s`], ["size", image.size.join("×")]]),
        sidecarLink(job, image.sidecar));
      target.append(element("figure", { class: `image-${variant}` },
        element("img", { src: fileUrl(job, image.file), alt: image.label, class: variant }), caption));
    }
    target.append(element("p", { class: "muted small", text: job.result.caption }));
  },
  sweep(job) {
    const result = job.result;
    $("result-sweep").append(element("figure", {},
      element("img", { src: fileUrl(job, result.grid), class: "grid", alt: "λ × α grid" }),
      element("figcaption", {}, details([["cells", result.cells.length],
        ["generate (all)", `${result.generate_s.toFixed(3)} s`]]), element("p", { text: result.caption }),
      sidecarLink(job, result.sidecar))));
  },
  maps(job) {
    const result = job.result;
    const bar = element("div", { class: "colorbar" });
    bar.style.background = info.colorbar;
    const labels = element("div", { class: "colorbar-labels" },
      element("span", { text: "0" }), element("span", { text: "token's peak (off and on share it)" }));
    const peaks = result.tokens.map((token) => [token.text, token.peak.toPrecision(3)]);
    $("result-maps").append(element("figure", {},
      element("img", { src: fileUrl(job, result.grid), class: "grid", alt: "attention maps off vs on" }),
      element("figcaption", {}, bar, labels, details([["token peaks", ""], ...peaks,
        ["generate (off + on)", `${result.timings.generate_s.toFixed(3)} s`]]),
      element("p", { text: result.caption }), sidecarLink(job, result.sidecar), element("br"),
      element("a", { href: fileUrl(job, result.maps_file), download: result.maps_file, text: "raw maps (.npz)" }))));
  },
};

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  for (const button of document.querySelectorAll("button.run")) {
    button.addEventListener("click", () => submit(button.dataset.kind));
  }
  $("guidance").addEventListener("change", showGuidance);
  $("cancel").addEventListener("click", () => tracked && fetch(`/api/jobs/${tracked}/cancel`, { method: "POST" }));
  selectTab("compare");
  loadInfo().then(() => document.body.setAttribute("data-ready", "true"));
});
