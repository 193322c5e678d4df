// What this deployment offers, from the edge's /config.json (rendered from the environment by
// edge/envoy/render.py: web_config): e.g. which OAuth providers are configured.
export interface WebConfig {
  oauthProviders: string[];
}

let loaded: Promise<WebConfig> | null = null;

export function webConfig(): Promise<WebConfig> {
  loaded ??= fetch("/config.json", { credentials: "same-origin" })
    .then((response) => (response.ok ? response.json() : {}))
    .then((json: Partial<WebConfig>) => ({ oauthProviders: json.oauthProviders ?? [] }))
    .catch(() => ({ oauthProviders: [] }));
  return loaded;
}
