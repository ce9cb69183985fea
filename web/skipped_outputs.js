// Deep Exemplar-based Colorization: say in the page when ComfyUI skips outputs of a run.
//
// ComfyUI runs the outputs of a workflow that pass its input checks and silently skips the
// others: the page only outlines the failing node in red and the run reports success, so a
// video that was never written goes unnoticed. This extension shows the server's reasons as an
// error toast whenever a queued prompt comes back with node errors.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

function describe(nodeErrors) {
  return Object.entries(nodeErrors).map(([id, entry]) => {
    const node = app.graph?.getNodeById?.(Number(id));
    const title = node?.title || entry.class_type || `node ${id}`;
    const reasons = (entry.errors || []).map((e) => e.details ? `${e.message}: ${e.details}` : e.message);
    return `${title} (#${id}): ${reasons.join("; ") || "failed its input checks"}`;
  });
}

app.registerExtension({
  name: "DeepExemplar.SkippedOutputs",
  setup() {
    const queuePrompt = api.queuePrompt.bind(api);
    api.queuePrompt = async function (...args) {
      const answer = await queuePrompt(...args);
      const errors = answer?.node_errors;
      if (errors && Object.keys(errors).length) {
        const lines = describe(errors);
        const text = "Some outputs were skipped and nothing was written by them. " + lines.join(" | ");
        console.error(`DeepExemplar: ${text}`);
        app.extensionManager?.toast?.add({
          severity: "error", summary: "Outputs skipped", detail: text, life: 20000,
        });
      }
      return answer;
    };
  },
});
