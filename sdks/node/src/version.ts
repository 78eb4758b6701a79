/** The SDK version, sent in the User-Agent header (kept equal to package.json by the build). */
export const VERSION = '0.1.0';
