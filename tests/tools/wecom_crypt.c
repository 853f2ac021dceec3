/* wecom_crypt.c — plays the WeCom side of the callback crypto for
 * tests/integration/webhook_wecom.sh, with the adapter's own functions
 * (server/webhooks/wecom.c), since python3's standard library has no AES:
 *   wecom_crypt encrypt AESKEY RECEIVEID [PAD]  < msg   → base64 Encrypt
 *   wecom_crypt sign TOKEN TIMESTAMP NONCE ENCRYPT     → msg_signature
 *   wecom_crypt decrypt AESKEY RECEIVEID ENCRYPT       → msg
 * PAD (0..255) forces every padding byte to that value (broken on purpose
 * unless it happens to be the right one). One call per test step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zk.h"
#include "buf.h"
#include "server/webhooks/hooks.h"

zk_rc wecom__key(const char *encoding_aes_key, unsigned char key[32], char *err);
zk_rc wecom__sign(const char *token, const char *timestamp, const char *nonce, const char *encrypt, char out[41]);
zk_rc wecom__aes(const unsigned char key[32], int encrypt, const unsigned char *in, size_t n, unsigned char *out,
                 char *err);
zk_rc wecom__decrypt(const unsigned char key[32], const char *b64, const char *receive_id, char **out_msg,
                     size_t *out_len, char *err);
zk_rc wecom__encrypt(const unsigned char key[32], const unsigned char *random16, const char *msg, size_t len,
                     const char *receive_id, char **out_b64, char *err);

static int usage(void)
{
    fprintf(stderr, "usage: wecom_crypt encrypt AESKEY RECEIVEID [PAD] < msg\n"
                    "       wecom_crypt sign TOKEN TIMESTAMP NONCE ENCRYPT\n"
                    "       wecom_crypt decrypt AESKEY RECEIVEID ENCRYPT\n");
    return 2;
}

/* Same layout as wecom__encrypt but with every pad byte set to pad. */
static zk_rc encrypt_badpad(const unsigned char key[32], const char *msg, size_t len, const char *rid, int pad,
                            char **out, char *err)
{
    size_t ridlen = strlen(rid), n = 20 + len + ridlen;
    size_t total = n + (32 - n % 32);
    unsigned char *pt = calloc(1, total), *ct = calloc(1, total);
    zk_rc rc = ZK_NOMEM;
    if (!pt || !ct) goto out;
    memcpy(pt, "0123456789abcdef", 16);
    pt[16] = (unsigned char)(len >> 24);
    pt[17] = (unsigned char)(len >> 16);
    pt[18] = (unsigned char)(len >> 8);
    pt[19] = (unsigned char)len;
    memcpy(pt + 20, msg, len);
    memcpy(pt + 20 + len, rid, ridlen);
    memset(pt + n, pad, total - n);
    if ((rc = wecom__aes(key, 1, pt, total, ct, err)) != ZK_OK) goto out;
    rc = (*out = hook_b64encode(ct, total)) ? ZK_OK : ZK_NOMEM;
out:
    free(pt);
    free(ct);
    return rc;
}

int main(int argc, char **argv)
{
    char err[ZK_ERRLEN] = "";
    unsigned char key[32];
    if (argc < 2) return usage();
    if (!strcmp(argv[1], "sign") && argc == 6) {
        char sig[41];
        if (wecom__sign(argv[2], argv[3], argv[4], argv[5], sig) != ZK_OK) return 1;
        printf("%s\n", sig);
        return 0;
    }
    if (!strcmp(argv[1], "encrypt") && (argc == 4 || argc == 5)) {
        if (wecom__key(argv[2], key, err) != ZK_OK) { fprintf(stderr, "%s\n", err); return 1; }
        zk_buf in;
        buf_init(&in, 1u << 22);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
            if (buf_append(&in, chunk, n) != ZK_OK) return 1;
        char *enc = NULL;
        zk_rc rc = argc == 5 ? encrypt_badpad(key, buf_cstr(&in), in.len, argv[3], atoi(argv[4]), &enc, err)
                             : wecom__encrypt(key, NULL, buf_cstr(&in), in.len, argv[3], &enc, err);
        buf_free(&in);
        if (rc != ZK_OK) { fprintf(stderr, "encrypt: %s\n", err); return 1; }
        printf("%s\n", enc);
        zk_free(enc);
        return 0;
    }
    if (!strcmp(argv[1], "decrypt") && argc == 5) {
        if (wecom__key(argv[2], key, err) != ZK_OK) { fprintf(stderr, "%s\n", err); return 1; }
        char *msg = NULL;
        size_t n = 0;
        if (wecom__decrypt(key, argv[4], argv[3], &msg, &n, err) != ZK_OK) { fprintf(stderr, "decrypt: %s\n", err); return 1; }
        fwrite(msg, 1, n, stdout);
        zk_free(msg);
        return 0;
    }
    return usage();
}
