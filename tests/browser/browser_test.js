// The upload page in a real browser: starts `dermal serve` on a free loopback port, drives
// Debian's chromium (playwright-core, no downloaded browser) to upload a real HAM10000 image,
// checks the label and the heatmap overlay, moves the opacity slider, re-explains for another
// method and class, takes images by drag and drop and paste too, switches to Vietnamese, and
// saves screenshots (desktop and phone).
//   node browser_test.js --binary build/dermal --model models/x.onnx --image IMG --out DIR
"use strict";
const { chromium } = require("playwright-core");
const { spawn } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");
const assert = require("assert");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
for (const k of ["binary", "model", "image", "out"]) if (!args[k]) throw new Error("missing --" + k);
const CHROMIUM = "/usr/bin/chromium";

function startServer() {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, LOG_LEVEL: "info" };
    const child = spawn(args.binary, ["serve", "--host", "127.0.0.1", "--port", "0", "--model", args.model], { env });
    let log = "";
    const timer = setTimeout(() => reject(new Error("the server did not start:\n" + log)), 30000);
    child.stderr.on("data", (d) => {
      log += d;
      const m = /url=(http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1], log: () => log });
      }
    });
    child.on("exit", (code) => reject(new Error("the server exited with " + code + ":\n" + log)));
  });
}

async function stopServer(server) {
  const exited = new Promise((resolve) => server.child.once("exit", (code) => resolve(code)));
  server.child.kill("SIGTERM");
  return exited;
}

// The answer the API gives for the same file, to compare with what the page shows.
async function apiTopClass(url, image) {
  const res = await fetch(url + "/api/predict?gradcam=false", {
    method: "POST", body: fs.readFileSync(image), headers: { "Content-Type": "image/jpeg" },
  });
  assert.strictEqual(res.status, 200);
  return (await res.json()).top[0];
}

async function waitForResult(page) {
  await page.waitForFunction(() => !document.body.classList.contains("working") && document.querySelectorAll("#bars li").length > 0,
    null, { timeout: 30000 });
  const status = await page.textContent("#status");
  assert.ok(!/could not|không thể/i.test(status), "the page reports an error: " + status);
}

async function heatState(page) {
  return page.evaluate(() => {
    const heat = document.getElementById("heat");
    return { loaded: heat.complete && heat.naturalWidth > 0, width: heat.naturalWidth, height: heat.naturalHeight,
             opacity: parseFloat(heat.style.opacity),  // the set value (the computed one animates)
             src: (heat.getAttribute("src") || "").slice(0, 22) };
  });
}

async function main() {
  if (!fs.existsSync(CHROMIUM)) throw new Error(CHROMIUM + " is missing: tools/setup.sh installs Debian's chromium");
  fs.mkdirSync(args.out, { recursive: true });
  const server = await startServer();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "dermal-chromium-"));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
      viewport: { width: 1280, height: 900 },
      locale: "en-US",
    });
    const page = context.pages()[0] || (await context.newPage());
    const offsite = [];
    page.on("request", (r) => { if (!r.url().startsWith(server.url) && !r.url().startsWith("data:") && !r.url().startsWith("blob:")) offsite.push(r.url()); });
    const consoleErrors = [];
    page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));

    await page.goto(server.url + "/");
    assert.match(await page.textContent(".notice"), /Not a medical device/);

    // Upload through the file picker.
    await page.setInputFiles("#file", args.image);
    await waitForResult(page);
    const expected = await apiTopClass(server.url, args.image);
    const first = page.locator("#bars li").first();
    assert.strictEqual(await first.getAttribute("data-label"), expected.label);
    assert.match(await first.locator(".bar-name").textContent(), new RegExp(expected.name));
    assert.strictEqual(await page.locator("#bars li").count(), 7);
    let heat = await heatState(page);
    assert.ok(heat.loaded, "the heatmap image did not load");
    assert.strictEqual(heat.src, "data:image/png;base64,");
    assert.ok(Math.abs(heat.opacity - 0.45) < 1e-6, "initial opacity " + heat.opacity);
    assert.match(await page.textContent("#time"), /Answered in \d+ ms/);
    await page.screenshot({ path: path.join(args.out, "browser_desktop.png"), fullPage: true });

    // The slider changes the overlay: keyboard as a user would, then check what is drawn.
    const stack = page.locator("#stack");
    const before = await stack.screenshot();
    await page.focus("#opacity");
    await page.keyboard.press("End");
    for (let i = 0; i < 10; ++i) await page.keyboard.press("ArrowLeft");
    assert.strictEqual(await page.textContent("#opacity-value"), "90%");
    heat = await heatState(page);
    assert.ok(Math.abs(heat.opacity - 0.9) < 1e-6, "opacity after the slider " + heat.opacity);
    await page.waitForTimeout(200);  // the CSS transition
    const after = await stack.screenshot();
    assert.ok(!before.equals(after), "moving the slider did not change the overlay");
    // Original / overlay toggle.
    await page.click("#show-original");
    assert.strictEqual((await heatState(page)).opacity, 0);
    await page.click("#show-overlay");
    assert.ok((await heatState(page)).opacity > 0.8);

    // Another method, then another class: the page asks the API again.
    const methodAnswer = page.waitForResponse((r) => r.url().includes("method=gradcam%2B%2B") && r.status() === 200);
    await page.selectOption("#method", "gradcam++");
    await methodAnswer;
    await waitForResult(page);
    const classAnswer = page.waitForResponse((r) => r.url().includes("class=mel") && r.status() === 200);
    await page.selectOption("#klass", "mel");
    await classAnswer;
    await waitForResult(page);
    assert.match(await page.textContent("#caption"), /Melanoma/);
    assert.ok((await heatState(page)).loaded);

    // Drag and drop, then paste: the same image through the page's other two ways in.
    const b64 = fs.readFileSync(args.image).toString("base64");
    for (const way of ["drop", "paste"]) {
      const answer = page.waitForResponse((r) => r.url().includes("/api/predict") && r.status() === 200);
      await page.evaluate(([data, how]) => {
        const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], "lesion.jpg", { type: "image/jpeg" }));
        if (how === "drop") document.getElementById("drop").dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        else document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: dt, bubbles: true, cancelable: true }));
      }, [b64, way]);
      await answer;
      await waitForResult(page);
      assert.strictEqual(await page.locator("#bars li").first().getAttribute("data-label"), expected.label, way);
      assert.ok((await heatState(page)).loaded, way);
    }
    // A new image starts over at the top class.
    assert.strictEqual(await page.inputValue("#klass"), "top");

    // Vietnamese.
    await page.click("button[data-lang=vi]");
    assert.match(await page.textContent(".notice"), /Đây không phải là thiết bị y tế và không phải là chẩn đoán\./);
    assert.match(await page.textContent("#caption"), /Nốt ruồi sắc tố/);
    await page.screenshot({ path: path.join(args.out, "browser_desktop_vi.png"), fullPage: true });

    // A photo that is not a skin lesion (python3-skimage's coffee cup): the page says so in the
    // chosen language, shows no class, and analyses it only when asked to.
    const cup = "/usr/lib/python3/dist-packages/skimage/data/coffee.png";
    await page.setInputFiles("#file", cup);
    await page.waitForSelector("#not-lesion:not([hidden])", { timeout: 30000 });
    assert.match(await page.textContent("#not-lesion h2"), /Ảnh này có vẻ không phải là ảnh tổn thương da/);
    assert.ok(await page.locator("#result").isHidden(), "a diagnosis is shown for a coffee cup");
    await page.click("button[data-lang=en]");
    assert.match(await page.textContent("#not-lesion h2"), /does not look like a skin-lesion image/);
    await page.screenshot({ path: path.join(args.out, "browser_not_lesion.png"), fullPage: true });
    const forced = page.waitForResponse((r) => r.url().includes("force=1") && r.status() === 200);
    await page.click("#anyway");
    await forced;
    await waitForResult(page);
    assert.ok(await page.locator("#not-lesion").isHidden());
    assert.match(await page.textContent("#check-note"), /does not look like a skin-lesion image/);
    assert.strictEqual(await page.locator("#bars li").count(), 7);

    // A phone screen: nothing wider than the viewport.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click("button[data-lang=en]");
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, "the page is wider than a phone screen by " + overflow + " px");
    await page.screenshot({ path: path.join(args.out, "browser_phone.png"), fullPage: true });

    assert.deepStrictEqual(offsite, [], "the page fetched from elsewhere");
    assert.deepStrictEqual(consoleErrors, [], "console errors");
    console.log("browser test passed: top class " + expected.label + ", screenshots in " + args.out);
  } finally {
    if (context) await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
    const code = await stopServer(server);
    if (code !== 0) console.error("server exit code " + code + "\n" + server.log());
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
