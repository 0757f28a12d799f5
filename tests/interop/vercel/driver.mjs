// The Vercel AI SDK (generateText / streamText / embed with experimental_telemetry) calls the fake LLM
// servers; every span is written as one OTLP/JSON ExportTraceServiceRequest line to OUT.
//
//   node driver.mjs BASE_URL OUT SCENARIOS_JSON
//
// Run by tests/interop/capture.py (which starts the fake servers and installs package.json here).
import { appendFileSync } from "node:fs";

import { createAnthropic } from "@ai-sdk/anthropic";
import { createOpenAI } from "@ai-sdk/openai";
import { context, trace } from "@opentelemetry/api";
import { AsyncLocalStorageContextManager } from "@opentelemetry/context-async-hooks";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes } from "@opentelemetry/resources";
import { BasicTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base";
import { embed, generateText, streamText } from "ai";

const [baseUrl, out, scenariosJson] = process.argv.slice(2);
const scenarios = JSON.parse(scenariosJson);
const PROMPT = "Where is my order? My card number is 4111 1111 1111 1111."; // prompt content: never stored

class JsonLinesExporter {
  export(spans, done) {
    appendFileSync(out, Buffer.from(JsonTraceSerializer.serializeRequest(spans)).toString() + "\n");
    done({ code: 0 });
  }
  shutdown() {
    return Promise.resolve();
  }
  forceFlush() {
    return Promise.resolve();
  }
}

context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ "service.name": "interop-vercel-ai" }),
  spanProcessors: [new SimpleSpanProcessor(new JsonLinesExporter())],
});
trace.setGlobalTracerProvider(provider);
const tracer = trace.getTracer("tests.interop.vercel");

async function call(s) {
  const headers = { "x-scenario": s.name };
  const openai = createOpenAI({ baseURL: `${baseUrl}/v1`, apiKey: "sk-fake", headers });
  const anthropic = createAnthropic({ baseURL: `${baseUrl}/v1`, apiKey: "sk-ant-fake", headers });
  const a = s.attribution;
  const options = {
    maxRetries: 0,
    abortSignal: s.stall ? AbortSignal.timeout(s.client_timeout_ms) : undefined,
    // the AI SDK's own attribution keys: functionId and metadata
    experimental_telemetry: {
      isEnabled: true,
      functionId: a.route,
      metadata: {
        userId: a.user,
        sessionId: a.session,
        promptVersion: a.prompt_version,
        router: a.router,
        escalated: a.escalated,
      },
    },
  };
  if (s.operation === "embeddings") {
    return embed({ model: openai.embedding(s.request_model), value: "where is my order", ...options });
  }
  const model = s.provider === "anthropic" ? anthropic(s.request_model) : openai.chat(s.request_model);
  if (s.stream) {
    const result = streamText({ model, prompt: PROMPT, ...options, onError: () => {} });
    for await (const _ of result.textStream) {
      // consume the stream
    }
    return result.usage;
  }
  return generateText({ model, prompt: PROMPT, ...options });
}

for (const s of scenarios) {
  await tracer.startActiveSpan(`scenario ${s.name}`, async (span) => {
    try {
      await call(s);
    } catch (error) {
      console.error(`${s.name}: ${error.name}`);
    }
    span.end();
  });
}
await provider.shutdown();
