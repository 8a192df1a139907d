// OAuth 2.0 Form Post Response Mode: send the authorization response on to the application at once.
document.addEventListener("DOMContentLoaded", () => document.forms[0].submit());
