/** The project API keys every test environment has (SUPABASE_PUBLISHABLE_KEYS, …). */
export const testPublishableKey = "sb_publishable_test_0123456789abcdefghijklmnop";
export const testSecretKey = "sb_secret_test_0123456789abcdefghijklmnopqrstuv";

/** The variables Supabase injects into every function, with the keys above. */
export const testApiKeyEnv = {
  SUPABASE_PUBLISHABLE_KEYS: JSON.stringify({ default: testPublishableKey }),
  SUPABASE_SECRET_KEYS: JSON.stringify({ default: testSecretKey }),
};
