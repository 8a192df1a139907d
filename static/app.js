// Progressive enhancement only: every page works without this file.
document.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-copy], button[data-download]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy || button.dataset.download);
  if (!source) return;
  const text = source.innerText.trim();
  if (button.dataset.copy && navigator.clipboard) {
    navigator.clipboard.writeText(text).then(() => { button.textContent = "Copied"; });
  } else if (button.dataset.download) {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text + "\n"], { type: "text/plain" }));
    link.download = button.dataset.filename || "download.txt";
    link.click();
    URL.revokeObjectURL(link.href);
  }
});
