/* The book's in-browser latent explorers and run sweeps (vae_tut/web.py writes their HTML).
 *
 * An explorer (div.vae-explorer) carries its data as JSON and names an ONNX decoder
 * (data-vae-model), which the build copies to _static/vae-models/. The decoder runs with
 * onnxruntime-web's WebAssembly backend, served from _static/offline/ort/ (single-threaded:
 * the pages are not cross-origin isolated). Nothing is loaded from another site. Until the
 * decoder is ready, and without JavaScript, the block shows its static picture.
 *
 * A sweep (div.vae-sweep) holds one precomputed frame per run; a slider shows one at a time.
 *
 * For tests, each explorer element gets a `vaeExplorer` object: show(code) decodes and
 * draws a code, setT(t) moves the interpolation, and `times` lists the decode times in ms.
 */
(function () {
  "use strict";

  var here = document.currentScript && document.currentScript.src;
  var STATIC = new URL(".", here || document.baseURI).href;
  var ORT_DIR = STATIC + "offline/ort/";
  var MODELS = STATIC + "vae-models/";
  var SIDE = 28;
  var ortPromise = null;

  function loadOrt() {
    if (!ortPromise) {
      ortPromise = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = ORT_DIR + "ort.wasm.min.js";
        s.onload = function () {
          var ort = window.ort;
          ort.env.logLevel = "error";
          ort.env.wasm.numThreads = 1; // no SharedArrayBuffer without cross-origin isolation
          ort.env.wasm.proxy = false;
          ort.env.wasm.wasmPaths = ORT_DIR;
          resolve(ort);
        };
        s.onerror = function () { reject(new Error("onnxruntime-web is not in this build (" + s.src + ")")); };
        document.head.appendChild(s);
      });
    }
    return ortPromise;
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "class") { node.className = attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  // Dark ink on white, like the book's figures (matplotlib's gray_r from 0 to 1).
  function drawPixels(canvas, values, isBytes) {
    var ctx = canvas.getContext("2d");
    var img = ctx.createImageData(SIDE, SIDE);
    for (var i = 0; i < SIDE * SIDE; i++) {
      var v = isBytes ? 255 - values[i] : Math.round(255 * (1 - Math.min(1, Math.max(0, values[i]))));
      img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
      img.data[4 * i + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
  }

  function imageCanvas(cls, label) {
    return el("canvas", {"class": cls, width: SIDE, height: SIDE, role: "img", "aria-label": label});
  }

  function bytesOf(b64) {
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }

  function fmt(code) {
    var shown = code.slice(0, 6).map(function (v) { return v.toFixed(2); }).join(", ");
    return "z = (" + shown + (code.length > 6 ? ", …" : "") + ")";
  }

  // Runs `work` on the latest request only: while one decode runs, newer requests replace older ones.
  function Pump(work) { this.work = work; this.pending = null; this.running = null; }
  Pump.prototype.request = function (arg) {
    var self = this;
    self.pending = arg;
    if (!self.running) {
      self.running = (async function () {
        try {
          while (self.pending !== null) { var a = self.pending; self.pending = null; await self.work(a); }
        } finally { self.running = null; }
      })();
    }
    return self.running;
  };

  async function initExplorer(root) {
    var data = JSON.parse(root.querySelector("script.vae-explorer-data").textContent);
    var live = root.querySelector(".vae-live");
    root.dataset.state = "loading";
    var ort = await loadOrt();
    var session = await ort.InferenceSession.create(MODELS + data.model, {executionProviders: ["wasm"]});
    var z = data.z, times = [];

    async function decode(code) {
      var input = new ort.Tensor("float32", Float32Array.from(code), [1, z]);
      var t0 = performance.now();
      var out = await session.run({z: input});
      times.push(performance.now() - t0);
      return out.x.data;
    }

    var code = new Array(z).fill(0);
    var image = imageCanvas("vae-image", "decoded image");
    var codeText = el("p", {"class": "vae-code"});
    var timeText = el("p", {"class": "vae-time"});
    var api = {times: times, last: null, code: code, decodes: 0};
    var draws = new Pump(async function (c) {
      var px = await decode(c);
      drawPixels(image, px, false);
      api.last = px; api.decodes += 1;
      codeText.textContent = fmt(c);
      var recent = times.slice(-20);
      timeText.textContent = "decoded in " + (recent.reduce(function (a, b) { return a + b; }, 0) / recent.length).toFixed(1) + " ms";
      root.dataset.decodes = String(api.decodes);
      if (marks) { drawMarks(); }
    });
    function update() { return draws.request(code.slice()); }

    var row = el("div", {"class": "vae-row"});
    var marks = null, sliders = [];
    var pad = data.pad;
    function drawMarks() {
      var ctx = marks.getContext("2d"), w = marks.width, h = marks.height;
      ctx.clearRect(0, 0, w, h);
      var x = (code[0] - pad.lo) / (pad.hi - pad.lo) * w, y = (pad.hi - code[1]) / (pad.hi - pad.lo) * h;
      var r = 0.03 * w;
      ctx.lineWidth = 0.012 * w;
      ctx.strokeStyle = "#fff";
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
      ctx.lineWidth = 0.006 * w;
      ctx.strokeStyle = "#000";
      ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
      ctx.beginPath(); ctx.moveTo(x - 1.8 * r, y); ctx.lineTo(x + 1.8 * r, y); ctx.moveTo(x, y - 1.8 * r); ctx.lineTo(x, y + 1.8 * r); ctx.stroke();
    }
    if (z === 2 && pad) {
      var bg = el("img", {src: pad.png, alt: "test-set posterior means, coloured by class"});
      marks = el("canvas", {"class": "vae-pad-marks", width: 640, height: 640});
      var padBox = el("div", {"class": "vae-pad", tabindex: "0", role: "application",
        "aria-label": "latent pad: click, drag or use the arrow keys to move the code"}, [bg, marks]);
      var toCode = function (ev) {
        var box = marks.getBoundingClientRect();
        var fx = Math.min(1, Math.max(0, (ev.clientX - box.left) / box.width));
        var fy = Math.min(1, Math.max(0, (ev.clientY - box.top) / box.height));
        code[0] = pad.lo + fx * (pad.hi - pad.lo);
        code[1] = pad.hi - fy * (pad.hi - pad.lo);
        update();
      };
      marks.addEventListener("pointerdown", function (ev) { marks.setPointerCapture(ev.pointerId); toCode(ev); });
      marks.addEventListener("pointermove", function (ev) { if (ev.buttons & 1) { toCode(ev); } });
      padBox.addEventListener("keydown", function (ev) {
        var step = 0.05 * (pad.hi - pad.lo), moves = {ArrowLeft: [-step, 0], ArrowRight: [step, 0], ArrowUp: [0, step], ArrowDown: [0, -step]};
        var m = moves[ev.key];
        if (!m) { return; }
        ev.preventDefault();
        code[0] = Math.min(pad.hi, Math.max(pad.lo, code[0] + m[0]));
        code[1] = Math.min(pad.hi, Math.max(pad.lo, code[1] + m[1]));
        update();
      });
      var axes = el("p", {"class": "vae-axes", text: "z₁ from " + pad.lo + " to " + pad.hi + " (right), z₂ from " + pad.lo + " to " + pad.hi + " (up)"});
      var legend = el("p", {"class": "vae-legend"}, data.classes.map(function (c) {
        var sw = el("span", {"class": "vae-swatch"});
        sw.style.background = c.colour;
        return el("span", {"class": "vae-class"}, [sw, document.createTextNode(" " + c.name)]);
      }));
      row.appendChild(el("div", {"class": "vae-pad-col"}, [padBox, axes, legend]));
    } else {
      var box = el("div", {"class": "vae-sliders"}, [el("p", {"class": "vae-sliders-head",
        text: "one slider per dimension, largest KL first; grey = inactive (activity ≤ " + data.activeThreshold + ")"})]);
      data.dims.forEach(function (d) {
        var input = el("input", {type: "range", min: -d.limit, max: d.limit, step: "0.01", value: "0",
          "data-dim": d.index, "aria-label": "z" + (d.index + 1)});
        var out = el("output", {text: "0.00"});
        input.addEventListener("input", function () {
          code[d.index] = parseFloat(input.value);
          out.textContent = code[d.index].toFixed(2);
          update();
        });
        sliders.push({input: input, out: out, index: d.index});
        box.appendChild(el("label", {"class": "vae-dim" + (d.active ? "" : " inactive")}, [
          el("span", {"class": "vae-dim-name", text: "z" + (d.index + 1)}), input, out,
          el("span", {"class": "vae-kl", text: "KL " + d.kl.toFixed(2)}),
          d.active ? null : el("span", {"class": "vae-badge", text: "inactive"})]));
      });
      var reset = el("button", {type: "button", "class": "vae-reset", text: "all to 0"});
      reset.addEventListener("click", function () {
        for (var j = 0; j < z; j++) { code[j] = 0; }
        sliders.forEach(function (s) { s.input.value = "0"; s.out.textContent = "0.00"; });
        update();
      });
      box.appendChild(reset);
      row.appendChild(box);
    }
    row.appendChild(el("div", {"class": "vae-out"}, [image, codeText, timeText]));
    live.appendChild(row);

    // Interpolation between two test images: decode (1 - t) a + t b of their posterior means.
    var gallery = data.gallery;
    function chooser(selected, what) {
      var sel = el("select", {"aria-label": what});
      gallery.forEach(function (g, i) {
        var opt = el("option", {value: String(i), text: g.name + " (test image " + g.index + ")"});
        if (i === selected) { opt.selected = true; }
        sel.appendChild(opt);
      });
      return sel;
    }
    var selA = chooser(data.pair[0], "first image"), selB = chooser(data.pair[1], "second image");
    var thumbA = imageCanvas("vae-thumb", "first test image"), thumbB = imageCanvas("vae-thumb", "second test image");
    var morph = imageCanvas("vae-morph", "decoded interpolation");
    var tInput = el("input", {type: "range", min: "0", max: "1", step: "0.01", value: "0.5", "aria-label": "t"});
    var tOut = el("output", {text: "t = 0.50"});
    var morphs = new Pump(async function (c) { var px = await decode(c); drawPixels(morph, px, false); api.lastMorph = px; });
    function interpolate() {
      var a = gallery[+selA.value], b = gallery[+selB.value], t = parseFloat(tInput.value);
      drawPixels(thumbA, bytesOf(a.pixels), true);
      drawPixels(thumbB, bytesOf(b.pixels), true);
      tOut.textContent = "t = " + t.toFixed(2);
      return morphs.request(a.code.map(function (v, j) { return (1 - t) * v + t * b.code[j]; }));
    }
    [selA, selB].forEach(function (s) { s.addEventListener("change", interpolate); });
    tInput.addEventListener("input", interpolate);
    live.appendChild(el("div", {"class": "vae-interp"}, [
      el("p", {"class": "vae-interp-head", text: "Interpolation: decode (1 − t)·z_a + t·z_b between the posterior means of two test images"}),
      el("div", {"class": "vae-interp-controls"}, [selA, tInput, tOut, selB]),
      el("div", {"class": "vae-interp-images"}, [thumbA, morph, thumbB])]));

    api.show = function (c) { for (var j = 0; j < z; j++) { code[j] = c[j]; } return update(); };
    api.setT = function (t) { tInput.value = String(t); return interpolate(); };
    root.vaeExplorer = api;
    await update();
    await interpolate();
    root.querySelector(".vae-static").hidden = true;
    live.hidden = false;
    if (marks) { drawMarks(); }
    root.dataset.state = "ready";
  }

  function initSweep(root) {
    var frames = Array.prototype.slice.call(root.querySelectorAll(".vae-sweep-frame"));
    var values = frames.map(function (f) { return f.dataset.value; });
    var input = el("input", {type: "range", min: "0", max: String(frames.length - 1), step: "1",
      value: root.dataset.start || "0", "aria-label": root.dataset.name});
    var out = el("output");
    function show() {
      var i = +input.value;
      frames.forEach(function (f, j) { f.hidden = j !== i; });
      out.textContent = values[i];
      root.dataset.index = String(i);
    }
    input.addEventListener("input", show);
    root.insertBefore(el("div", {"class": "vae-sweep-control"}, [
      el("label", {text: root.dataset.name + " "}, [input]), out]), root.firstChild);
    root.classList.add("vae-js");
    show();
  }

  function start() {
    document.querySelectorAll(".vae-sweep").forEach(initSweep);
    if (window.vaeNoDecoder) { return; } // built without onnxruntime-web: the static pictures stay
    document.querySelectorAll(".vae-explorer[data-vae-model]").forEach(function (root) {
      initExplorer(root).catch(function (err) {
        root.dataset.state = "failed";
        console.warn("latent explorer: " + (err && err.message ? err.message : err) + "; showing the static picture");
      });
    });
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
