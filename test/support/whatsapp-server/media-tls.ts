/**
 * The TLS identity of the loopback media host. rc14 always uploads media to
 * `https://<media_conn host>/…`, so the host must speak TLS; this is a
 * self-signed test certificate for 127.0.0.1 and localhost (valid until
 * 2126), and `trustTestMediaCertificate()` makes Node's https module (which
 * Baileys uploads with) accept it in this process.
 */
import https from 'node:https';
import { rootCertificates } from 'node:tls';

/** The media host's certificate (PEM); it is its own issuer. */
export const TEST_MEDIA_CERT_PEM = `
-----BEGIN CERTIFICATE-----
MIIB+jCCAaCgAwIBAgIUOC14rE9t68q19OV5uLkIUmegqgwwCgYIKoZIzj0EAwIw
MDEuMCwGA1UEAwwlUG9udGUgbG9vcGJhY2sgbWVkaWEgaG9zdCAodGVzdCBvbmx5
KTAgFw0yNjEyMDEyMjI0MDNaGA8yMTI2MTEwNzIyMjQwM1owMDEuMCwGA1UEAwwl
UG9udGUgbG9vcGJhY2sgbWVkaWEgaG9zdCAodGVzdCBvbmx5KTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABLmEwUjVKxup4Ny/e8XLiJMgYl789QsuXjCwWkV7vUU6
KsxQrL5xzsZW+ByQ7t7zffOhrraKYbNq7AOuL6Glqp2jgZUwgZIwHQYDVR0OBBYE
FPFODKMQXqNOli/kwcd7EBuYi2nKMB8GA1UdIwQYMBaAFPFODKMQXqNOli/kwcd7
EBuYi2nKMBoGA1UdEQQTMBGHBH8AAAGCCWxvY2FsaG9zdDAPBgNVHRMBAf8EBTAD
AQH/MA4GA1UdDwEB/wQEAwIChDATBgNVHSUEDDAKBggrBgEFBQcDATAKBggqhkjO
PQQDAgNIADBFAiEAkWNw5sTQg3yTevnJXAkEQDwPAPRB/i/AXWamWS6HUGkCICnK
yBHjP1wnGMNPir5IuGVxKf2klKOs5B5bvIyOWg4V
-----END CERTIFICATE-----
`.trim();

/** Its private key (PEM). Test only: it protects nothing. */
export const TEST_MEDIA_KEY_PEM = `
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVsmWsfUn3vONzJwL
06EAJuY21xkFHgXk9PYnP/AayPehRANCAAS5hMFI1SsbqeDcv3vFy4iTIGJe/PUL
Ll4wsFpFe71FOirMUKy+cc7GVvgckO7e833zoa62imGzauwDri+hpaqd
-----END PRIVATE KEY-----
`.trim();

/**
 * Adds the media host's certificate to the CAs of `https.globalAgent`
 * (keeping the public roots), which is what rc14's upload request uses. Node's
 * `fetch` (undici) does not read it: downloads go to the host's plain-HTTP
 * port. Returns a function that restores the previous CA list.
 */
export function trustTestMediaCertificate(): () => void {
  const options = https.globalAgent.options;
  const previous = options.ca;
  const current = previous === undefined ? [...rootCertificates] : Array.isArray(previous) ? [...previous] : [previous];
  if (!current.includes(TEST_MEDIA_CERT_PEM)) current.push(TEST_MEDIA_CERT_PEM);
  options.ca = current;
  return () => {
    options.ca = previous;
  };
}
