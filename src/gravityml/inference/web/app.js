// The exported model run in the browser by onnxruntime-web (wasm, one thread: no cross-origin
// isolation needed). The form is built from metadata.json: one field per training column.
"use strict";

// An absolute URL: the runtime import()s its .mjs glue from here, and "vendor/..." alone would be a
// bare module specifier, which the browser refuses.
ort.env.wasm.wasmPaths = new URL("vendor/", document.baseURI).href;
ort.env.wasm.numThreads = 1;

const el = (id) => document.getElementById(id);
let session = null;
let meta = null;
let runs = 0;

function field(column) {
  const label = document.createElement("label");
  const name = document.createElement("span");
  name.textContent = column.name + (column.kind === "numeric" ? "" : " (" + column.kind + ")");
  label.appendChild(name);
  let input;
  if (column.categories) {
    input = document.createElement("select");
    for (const value of [""].concat(column.categories.map(String))) {
      const option = document.createElement("option");
      option.value = value;
      option.textContent = value === "" ? "(missing)" : value;
      input.appendChild(option);
    }
  } else {
    input = document.createElement("input");
    input.type = column.kind === "numeric" ? "number" : "text";
    if (column.kind === "numeric") input.step = "any";
  }
  input.name = column.name;
  input.id = "feature-" + column.name;
  label.appendChild(input);
  return label;
}

function value(column, spec) {
  const raw = el("feature-" + column).value;
  if (spec.datatype === "STRING") return raw === "" ? spec.missing || "" : raw;
  if (raw === "") return NaN;
  if (raw === "true" || raw === "false") return raw === "true" ? 1 : 0;
  return Number(raw);
}

function feeds() {
  const out = {};
  for (const spec of meta.inputs) {
    const values = spec.columns.map((c) => value(c, spec));
    const shape = [1, spec.columns.length];
    if (spec.datatype === "STRING") out[spec.name] = new ort.Tensor("string", values, shape);
    else if (spec.datatype === "FP64") out[spec.name] = new ort.Tensor("float64", Float64Array.from(values), shape);
    else if (spec.datatype === "INT64") out[spec.name] = new ort.Tensor("int64", BigInt64Array.from(values.map((v) => BigInt(Math.round(v)))), shape);
    else out[spec.name] = new ort.Tensor("float32", Float32Array.from(values), shape);
  }
  return out;
}

function show(results) {
  const outputs = meta.outputs;
  let prediction = "";
  let confidence = "";
  if (outputs.probabilities) {
    const p = Array.from(results[outputs.probabilities].data, Number);
    let best = 0;
    for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
    prediction = String(meta.label_map[String(best)]);
    confidence = p[best].toFixed(6);
  } else if (outputs.prediction) {
    prediction = String(Number(results[outputs.prediction].data[0]));
  } else if (outputs.score) {
    const flagged = Boolean(Number(results[outputs.is_anomaly].data[0]));
    prediction = flagged ? "anomaly" : "normal";
    confidence = String(Number(results[outputs.score].data[0]));
  } else if (outputs.components) {
    prediction = String(Number(results[outputs.components].data[0]));
    confidence = String(Number(results[outputs.confidence].data[0]));
  }
  el("prediction").textContent = prediction;
  el("confidence").textContent = confidence;
}

async function predict() {
  try {
    show(await session.run(feeds()));
    el("status").textContent = "ran in the browser (onnxruntime-web " + ort.env.versions.web + ")";
    el("status").className = "";
  } catch (err) {
    el("status").textContent = "error: " + err;
    el("status").className = "error";
  }
  runs += 1;
  document.body.dataset.runs = String(runs);
}

async function main() {
  try {
    meta = await (await fetch("metadata.json")).json();
    el("title").textContent = meta.model.ref + " (" + meta.model.kind + ")";
    const form = el("form");
    for (const column of meta.schema.features) form.appendChild(field(column));
    session = await ort.InferenceSession.create(meta.file, { executionProviders: ["wasm"] });
    el("predict").disabled = false;
    el("predict").addEventListener("click", predict);
    el("status").textContent = "model loaded; fill the form and press Predict";
    document.body.dataset.ready = "1";
  } catch (err) {
    el("status").textContent = "error: " + err;
    el("status").className = "error";
    document.body.dataset.ready = "error";
  }
}

main();
