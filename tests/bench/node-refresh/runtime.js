// A minimal Lambda runtime loop for Node.js, standing in for the managed nodejs20.x runtime (itself a
// loop over the Runtime API) in the benchmark's emulator. It loads the bundled handler, then repeats:
// GET /next, call the handler, POST the result. It is lighter than the managed runtime (no log
// patching, no X-Ray context, no streaming support), which favours Node in the comparison.
"use strict";
const http = require("node:http");
const path = require("node:path");

const [host, port] = process.env.AWS_LAMBDA_RUNTIME_API.split(":");
const base = "/2018-06-01/runtime";
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function call(method, urlPath, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port: Number(port), method, path: base + urlPath, agent, headers }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("error", reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

const errorBody = (err) => JSON.stringify({ errorType: err?.name ?? "Error", errorMessage: String(err?.message ?? err) });

async function main() {
  const root = process.env.LAMBDA_TASK_ROOT ?? process.cwd();
  const [file, name] = (process.env._HANDLER ?? "index.handler").split(".");
  let handler;
  try {
    handler = require(path.join(root, file + ".js"))[name];
    if (typeof handler !== "function") throw new Error(`${process.env._HANDLER} is not a function`);
  } catch (err) {
    await call("POST", "/init/error", errorBody(err), { "content-type": "application/json" });
    process.exit(1);
  }
  for (;;) {
    const next = await call("GET", "/invocation/next");
    const requestId = next.headers["lambda-runtime-aws-request-id"];
    const deadline = Number(next.headers["lambda-runtime-deadline-ms"]);
    const context = {
      awsRequestId: requestId,
      invokedFunctionArn: next.headers["lambda-runtime-invoked-function-arn"],
      functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
      getRemainingTimeInMillis: () => deadline - Date.now(),
    };
    try {
      const result = await handler(JSON.parse(next.body), context);
      await call("POST", `/invocation/${requestId}/response`, JSON.stringify(result ?? null), { "content-type": "application/json" });
    } catch (err) {
      await call("POST", `/invocation/${requestId}/error`, errorBody(err), { "content-type": "application/json" });
    }
  }
}

main();
