// Passkey ceremonies for /login, /login/mfa and /account. The server makes the options and judges the answer;
// this file carries them between the page and the browser's authenticator, then posts the form as usual.
(() => {
  if (!window.PublicKeyCredential || !navigator.credentials) return; // the passkey forms stay hidden
  const forms = document.querySelectorAll("form[data-passkey-form]");
  forms.forEach((form) => { form.hidden = false; });

  const toBytes = (text) => {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(base64 + "===".slice((base64.length + 3) % 4)), (c) => c.charCodeAt(0));
  };
  const toText = (buffer) => {
    let binary = "";
    new Uint8Array(buffer).forEach((b) => { binary += String.fromCharCode(b); });
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const withIds = (list) => (list || []).map((c) => ({ ...c, id: toBytes(c.id) }));

  // Browsers without WebAuthn Level 3's JSON helpers get the same conversion by hand.
  const creationOptions = (json) => PublicKeyCredential.parseCreationOptionsFromJSON
    ? PublicKeyCredential.parseCreationOptionsFromJSON(json)
    : { ...json, challenge: toBytes(json.challenge), user: { ...json.user, id: toBytes(json.user.id) },
        excludeCredentials: withIds(json.excludeCredentials) };
  const requestOptions = (json) => PublicKeyCredential.parseRequestOptionsFromJSON
    ? PublicKeyCredential.parseRequestOptionsFromJSON(json)
    : { ...json, challenge: toBytes(json.challenge), allowCredentials: withIds(json.allowCredentials) };
  const answer = (credential) => {
    if (typeof credential.toJSON === "function") return credential.toJSON();
    const r = credential.response;
    const response = { clientDataJSON: toText(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toText(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toText(r.authenticatorData);
      response.signature = toText(r.signature);
      if (r.userHandle) response.userHandle = toText(r.userHandle);
    }
    return { id: credential.id, rawId: toText(credential.rawId), type: credential.type, response,
      clientExtensionResults: credential.getClientExtensionResults(),
      authenticatorAttachment: credential.authenticatorAttachment || undefined };
  };

  const inWords = (error) => {
    switch (error && error.name) {
      case "NotAllowedError": return "The passkey request was cancelled or timed out. Try again when you are ready.";
      case "InvalidStateError": return "This device already holds a passkey for this account.";
      case "SecurityError": return "Passkeys do not work on this address. Open the site by its usual name (https).";
      case "NotSupportedError": return "This browser or device cannot make a passkey of a kind this site accepts.";
      case "AbortError": return "The passkey request was stopped.";
      default: return (error && error.message) || "Something went wrong with the passkey. Try again.";
    }
  };

  const startCeremony = async (form) => {
    const body = new URLSearchParams({ csrf: form.elements.csrf.value });
    const reply = await fetch(form.dataset.options, { method: "POST", body, credentials: "same-origin" });
    const json = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error(json.message || "The server could not start the passkey request.");
    return json;
  };

  const finish = (form, challengeId, credential) => {
    form.elements.challenge_id.value = challengeId;
    form.elements.credential.value = JSON.stringify(answer(credential));
    form.submit();
  };

  // Sign-in offers the passkeys in the username field's autofill where the browser can (conditional UI),
  // except right after a refusal: the page then says why, and offering the same passkey again at once
  // would only repeat it (an automatic browser would loop).
  let waiting = null;
  const loginForm = document.querySelector("form[data-passkey-form] button[data-passkey=login]")?.form;
  const autofill = async () => {
    if (!loginForm || document.getElementById("login-error")) return;
    if (!PublicKeyCredential.isConditionalMediationAvailable) return;
    if (!(await PublicKeyCredential.isConditionalMediationAvailable())) return;
    waiting = new AbortController();
    try {
      const { challenge_id: id, options } = await startCeremony(loginForm);
      const credential = await navigator.credentials.get({
        publicKey: requestOptions(options.publicKey), mediation: "conditional", signal: waiting.signal });
      if (credential) finish(loginForm, id, credential);
    } catch (error) {
      if (error.name !== "AbortError") loginForm.querySelector("[data-passkey-status]").textContent = inWords(error);
    }
  };
  autofill();

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-passkey]");
    if (!button) return;
    const form = button.form;
    const status = form.querySelector("[data-passkey-status]");
    const kind = button.dataset.passkey;
    if (waiting) { waiting.abort(); waiting = null; }
    button.disabled = true;
    status.textContent = kind === "register"
      ? "Follow your browser's prompt to create the passkey…"
      : "Follow your browser's prompt to use your passkey…";
    try {
      const { challenge_id: id, options } = await startCeremony(form);
      const credential = kind === "register"
        ? await navigator.credentials.create({ publicKey: creationOptions(options.publicKey) })
        : await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
      if (!credential) throw new DOMException("no credential", "NotAllowedError");
      status.textContent = "Checking the passkey…";
      finish(form, id, credential);
    } catch (error) {
      status.textContent = inWords(error);
      button.disabled = false;
    }
  });
})();
