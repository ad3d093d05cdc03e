// The admin pages' one script: uploads with a progress bar, and files dropped on the form.
// Without it the upload form still posts as a plain multipart form; every other admin page
// needs no script at all.

const form = document.querySelector("form[data-upload]");

function enhanceUpload(upload) {
  const input = upload.querySelector("input[type=file]");
  const dropzone = upload.querySelector("[data-dropzone]");
  const progress = upload.querySelector("[data-progress]");
  const bar = progress.querySelector("progress");
  const label = progress.querySelector("[data-progress-label]");
  const status = upload.querySelector("[data-upload-status]");
  const submit = upload.querySelector("button[type=submit]");

  const say = (text, error = false) => {
    status.textContent = text;
    status.classList.toggle("notice-error", error);
  };

  for (const type of ["dragenter", "dragover"]) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add("dragging");
    });
  }
  for (const type of ["dragleave", "drop"]) {
    dropzone.addEventListener(type, () => dropzone.classList.remove("dragging"));
  }
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      const count = input.files.length;
      say(`${count} file${count === 1 ? "" : "s"} ready to publish.`);
    }
  });

  upload.addEventListener("submit", (event) => {
    if (!input.files.length) return; // the browser's own "required" message stays
    event.preventDefault();
    const body = new FormData(upload);
    const request = new XMLHttpRequest();
    request.open("POST", "/admin/upload");
    request.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    request.setRequestHeader("X-CSRF-Token", upload.dataset.csrf);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (progressEvent) => {
      if (!progressEvent.lengthComputable) return;
      const percent = Math.round((progressEvent.loaded / progressEvent.total) * 100);
      bar.value = percent;
      label.textContent = percent < 100 ? `Uploading… ${percent}%` : "Signing and publishing…";
    });
    request.addEventListener("load", () => {
      submit.disabled = false;
      if (request.status === 201) {
        const titles = JSON.parse(request.responseText).tracks.map((track) => `“${track.title}”`);
        bar.value = 100;
        label.textContent = "Done";
        say(`Published ${titles.join(", ")}. Reloading…`);
        // The dashboard then lists the new tracks, rendered by the server like every page.
        window.setTimeout(() => window.location.assign(form.dataset.next || "/admin"), 600);
      } else {
        progress.hidden = true;
        say(`Nothing was published: ${request.responseText.trim() || request.statusText}`, true);
      }
    });
    request.addEventListener("error", () => {
      submit.disabled = false;
      progress.hidden = true;
      say("The upload failed: the connection to the node was lost.", true);
    });
    bar.value = 0;
    label.textContent = "Uploading… 0%";
    progress.hidden = false;
    submit.disabled = true;
    say("");
    request.send(body);
  });
}

if (form) enhanceUpload(form);
