// The API reference: Swagger UI over the document the edge serves (generated from the contracts).
// A script file, not an inline one: the page's Content-Security-Policy allows scripts from this origin only.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // Calls go to this origin; paste an access token under "Authorize" (make token, or sign in).
  persistAuthorization: false,
});
