/* test_parse.c — format detection and the txt / Markdown / HTML parsers:
 * titles, heading paths, removed boilerplate (script, style, nav), tables,
 * front matter, <main> preference, GBK pages with <meta charset>, binary
 * rejection. Fixtures are inline strings (GBK made with iconv). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <iconv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "indexer/parse/parse.h"

static idx_parsed *parse_ok(const char *name, const char *data, size_t len)
{
    idx_parsed *d = NULL;
    char err[ZK_ERRLEN] = "";
    zk_rc rc = idx_parse(name, data, len, &d, err);
    if (rc != ZK_OK) fprintf(stderr, "parse: %s\n", err);
    assert_int_equal(rc, ZK_OK);
    assert_non_null(d);
    assert_non_null(d->title);
    return d;
}

static idx_parsed *parse_str(const char *name, const char *s)
{
    return parse_ok(name, s, strlen(s));
}

/* All block text joined, for "contains" checks. */
static char *all_text(const idx_parsed *d)
{
    size_t n = 1;
    for (size_t i = 0; i < d->nblocks; i++) n += d->blocks[i].len + 2;
    char *s = malloc(n);
    s[0] = '\0';
    for (size_t i = 0; i < d->nblocks; i++) {
        if (i) strcat(s, "\n\n");
        strcat(s, d->blocks[i].text);
    }
    return s;
}

static const idx_block *block_with_heading(const idx_parsed *d, const char *h)
{
    for (size_t i = 0; i < d->nblocks; i++)
        if (d->blocks[i].heading && strcmp(d->blocks[i].heading, h) == 0) return &d->blocks[i];
    return NULL;
}

static char *to_gbk(const char *utf8, size_t *out_len)
{
    iconv_t cd = iconv_open("GBK", "UTF-8");
    assert_true(cd != (iconv_t)-1);
    size_t inleft = strlen(utf8), cap = inleft * 2 + 16, oleft = cap;
    char *out = malloc(cap), *o = out, *in = (char *)utf8;
    assert_true(iconv(cd, &in, &inleft, &o, &oleft) != (size_t)-1);
    iconv_close(cd);
    *out_len = cap - oleft;
    return out;
}

/* ---- detection -------------------------------------------------------- */

static void test_detect(void **state)
{
    (void)state;
    const char *html = "  <!DOCTYPE html><html><body><p>x</p></body></html>";
    assert_string_equal(idx_detect_format("a.txt", html, strlen(html)), "html");
    assert_string_equal(idx_detect_format(NULL, "<html><p>hi", 11), "html");
    const char *md = "# Title\n\nSome text.\n\n## Part\n\nMore.\n";
    assert_string_equal(idx_detect_format(NULL, md, strlen(md)), "md");
    assert_string_equal(idx_detect_format("notes.md", "plain words", 11), "md");
    assert_string_equal(idx_detect_format("page.htm", "hello", 5), "html");
    const char *fence = "Intro\n```\ncode\n```\n";
    assert_string_equal(idx_detect_format(NULL, fence, strlen(fence)), "md");
    const char *txt = "Just some words.\nAnother line #not a heading.\n";
    assert_string_equal(idx_detect_format(NULL, txt, strlen(txt)), "txt");
    assert_string_equal(idx_detect_format("x.txt", "", 0), "txt");
    const char *tags = "<div><p>one</p><p>two</p><p>three</p><a href=x>l</a><br>"
                       "<span>s</span><ul><li>i</li></ul></div>";
    assert_string_equal(idx_detect_format(NULL, tags, strlen(tags)), "html");

    /* binary: magic numbers and control-byte soup */
    assert_string_equal(idx_detect_format("a.pdf", "%PDF-1.7\n%\xE2\xE3", 12), "pdf");   /* routed to the PDF parser */
    assert_null(idx_detect_format("a.png", "\x89PNG\r\n\x1A\n\0\0\0\x0DIHDR", 16));
    char bin[256];
    for (int i = 0; i < 256; i++) bin[i] = (char)i;
    assert_null(idx_detect_format("blob.txt", bin, sizeof bin));
    /* UTF-16 text has NULs but is text */
    const char u16[] = "\xFF\xFEH\0e\0l\0l\0o\0 \0w\0o\0r\0l\0d\0";
    assert_string_equal(idx_detect_format(NULL, u16, sizeof u16 - 1), "txt");
    const char u16html[] = "<\0h\0t\0m\0l\0>\0<\0b\0o\0d\0y\0>\0h\0i\0";
    assert_string_equal(idx_detect_format(NULL, u16html, sizeof u16html - 1), "html");
}

static void test_binary_unsupported(void **state)
{
    (void)state;
    char bin[512];
    for (int i = 0; i < 512; i++) bin[i] = (char)(i * 7);
    idx_parsed *d = (idx_parsed *)1;
    char err[ZK_ERRLEN] = "";
    assert_int_equal(idx_parse("x.bin", bin, sizeof bin, &d, err), ZK_UNSUPPORTED);
    assert_null(d);
    assert_true(strlen(err) > 0);
    idx_parsed_free(NULL);
}

/* ---- txt --------------------------------------------------------------- */

static void test_txt(void **state)
{
    (void)state;
    const char *s = "\r\n  \r\n  My Notes Title  \r\nline two\r\n\r\n\r\nSecond paragraph.   \r\n";
    idx_parsed *d = parse_str("dir/notes.txt", s);
    assert_string_equal(d->format, "txt");
    assert_string_equal(d->charset, "UTF-8");
    assert_string_equal(d->title, "My Notes Title");
    assert_int_equal(d->nblocks, 1);
    assert_null(d->blocks[0].heading);
    assert_string_equal(d->blocks[0].text, "My Notes Title\nline two\n\nSecond paragraph.");
    assert_int_equal(d->blocks[0].len, strlen(d->blocks[0].text));
    idx_parsed_free(d);

    /* empty file: no blocks, title from the name */
    d = parse_ok("/tmp/x/Empty File.txt", "", 0);
    assert_int_equal(d->nblocks, 0);
    assert_string_equal(d->title, "Empty File");
    idx_parsed_free(d);
    d = parse_ok(NULL, "   \n", 4);
    assert_string_equal(d->title, "untitled");
    idx_parsed_free(d);

    /* long first line is capped */
    char longl[1200];
    memset(longl, 'x', sizeof longl - 1);
    longl[sizeof longl - 1] = '\0';
    d = parse_str("l.txt", longl);
    assert_true(strlen(d->title) <= 200);
    idx_parsed_free(d);
}

static void test_txt_gbk(void **state)
{
    (void)state;
    const char *u = "第一章 总则\n\n为了规范知识库的使用，制定本办法。\n本办法适用于全体员工。";
    size_t n;
    char *g = to_gbk(u, &n);
    idx_parsed *d = parse_ok("规章.txt", g, n);
    assert_string_equal(d->charset, "GB18030");
    assert_string_equal(d->title, "第一章 总则");
    assert_int_equal(d->nblocks, 1);
    assert_string_equal(d->blocks[0].text, u);
    idx_parsed_free(d);
    free(g);
}

/* ---- markdown ---------------------------------------------------------- */

static void test_markdown(void **state)
{
    (void)state;
    const char *md =
        "---\n"
        "title: front matter title\n"
        "tags: [a, b]\n"
        "---\n"
        "Preface text before any heading.\n"
        "\n"
        "# User Guide\n"
        "\n"
        "Welcome to *zhiku*, a **knowledge** base. See [the docs](http://example.com/x).\n"
        "\n"
        "## Install\n"
        "\n"
        "### Debian\n"
        "\n"
        "Run this:\n"
        "\n"
        "```sh\n"
        "apt install zhiku\n"
        "make && make test\n"
        "```\n"
        "\n"
        "### Empty Section\n"
        "\n"
        "## Usage\n"
        "\n"
        "| Option | Meaning |\n"
        "|--------|---------|\n"
        "| `-v`   | verbose &amp; loud |\n"
        "| `-q`   | quiet   |\n"
        "\n"
        "- item one\n"
        "- item two\n"
        "\n"
        "中文段落第一行\n"
        "第二行。\n";
    idx_parsed *d = parse_str("guide.md", md);
    assert_string_equal(d->format, "md");
    assert_string_equal(d->title, "User Guide");

    char *all = all_text(d);
    assert_null(strstr(all, "front matter"));
    assert_null(strstr(all, "*"));
    assert_null(strstr(all, "http://example.com"));
    assert_null(strstr(all, "```"));
    assert_non_null(strstr(all, "Welcome to zhiku, a knowledge base. See the docs."));
    free(all);

    assert_null(d->blocks[0].heading);
    assert_string_equal(d->blocks[0].text, "Preface text before any heading.");

    const idx_block *b = block_with_heading(d, "User Guide");
    assert_non_null(b);
    assert_non_null(strstr(b->text, "User Guide\n\nWelcome"));

    b = block_with_heading(d, "User Guide > Install > Debian");
    assert_non_null(b);
    assert_non_null(strstr(b->text, "Run this:"));
    assert_non_null(strstr(b->text, "apt install zhiku\nmake && make test"));

    /* a heading with nothing under it makes no block of its own */
    assert_null(block_with_heading(d, "User Guide > Install > Empty Section"));
    assert_null(block_with_heading(d, "User Guide > Install"));

    b = block_with_heading(d, "User Guide > Usage");
    assert_non_null(b);
    assert_non_null(strstr(b->text, "Option | Meaning\n-v | verbose & loud\n-q | quiet"));
    assert_non_null(strstr(b->text, "item one\nitem two"));
    assert_non_null(strstr(b->text, "中文段落第一行第二行。"));
    idx_parsed_free(d);
}

static void test_markdown_no_h1(void **state)
{
    (void)state;
    const char *md = "## Only Second Level\n\nBody text.\n\n## Another\n\nMore text.\n";
    idx_parsed *d = parse_str("docs/my-notes.md", md);
    assert_string_equal(d->title, "my-notes");
    assert_int_equal(d->nblocks, 2);
    assert_string_equal(d->blocks[0].heading, "Only Second Level");
    assert_string_equal(d->blocks[1].heading, "Another");
    idx_parsed_free(d);
}

/* ---- html -------------------------------------------------------------- */

static void test_html(void **state)
{
    (void)state;
    const char *html =
        "<!DOCTYPE html>\n<html><head><title> Page  Title </title>"
        "<style>body { color: red }</style>"
        "<script>var secret = 'SCRIPT_TEXT';</script></head>\n"
        "<body><header>SITE HEADER</header><nav><a href=/>Home</a> NAV_TEXT</nav>\n"
        "<h1>Main Heading</h1>\n"
        "<p>First   paragraph\n  with <b>bold</b> and <a href='x'>a link</a>.</p>"
        "<p>Second &amp; last.<br>After break.</p>"
        "<div hidden>HIDDEN_TEXT</div><div style=\"display: none\">HIDDEN2</div>"
        "<h2>Section A</h2><p>Alpha text.</p>"
        "<h3>Sub A1</h3><ul><li>one</li><li>two</li></ul>"
        "<h2>Table</h2><table><tr><th>Name</th><th>Value</th></tr>"
        "<tr><td>x</td><td>1</td></tr></table>"
        "<pre>  code  line\n    indented</pre>"
        "<form><button>CLICK</button><input value=INPUT></form>"
        "<aside>ASIDE_TEXT</aside><noscript>NOSCRIPT</noscript>"
        "<footer>FOOTER_TEXT</footer></body></html>";
    idx_parsed *d = parse_str("page.html", html);
    assert_string_equal(d->format, "html");
    assert_string_equal(d->title, "Page Title");

    char *all = all_text(d);
    const char *banned[] = {"SCRIPT_TEXT", "color", "NAV_TEXT", "SITE HEADER", "HIDDEN",
                            "CLICK", "ASIDE_TEXT", "NOSCRIPT", "FOOTER_TEXT", "Page Title"};
    for (size_t i = 0; i < sizeof banned / sizeof *banned; i++) {
        if (strstr(all, banned[i])) fail_msg("found %s in %s", banned[i], all);
    }
    free(all);

    const idx_block *b = block_with_heading(d, "Main Heading");
    assert_non_null(b);
    assert_string_equal(b->text,
                        "Main Heading\n\nFirst paragraph with bold and a link.\n\n"
                        "Second & last.\nAfter break.");
    b = block_with_heading(d, "Main Heading > Section A");
    assert_non_null(b);
    assert_string_equal(b->text, "Section A\n\nAlpha text.");
    b = block_with_heading(d, "Main Heading > Section A > Sub A1");
    assert_non_null(b);
    assert_non_null(strstr(b->text, "one\n\ntwo"));
    b = block_with_heading(d, "Main Heading > Table");
    assert_non_null(b);
    assert_non_null(strstr(b->text, "Name | Value\n\nx | 1"));
    assert_non_null(strstr(b->text, "  code  line\n    indented"));
    idx_parsed_free(d);
}

static void test_html_main_and_title_fallback(void **state)
{
    (void)state;
    char html[4096];
    snprintf(html, sizeof html,
             "<html><body><div class=menu>MENU MENU MENU</div>"
             "<article><header><h1>Article Title</h1></header>"
             "<p>%s</p></article><div>SIDEBAR junk</div></body></html>",
             "This is the real article body, long enough to count as the main content "
             "of the page, certainly more than two hundred bytes of text so that the "
             "parser keeps it instead of falling back to the whole body element. More "
             "words here to be safe.");
    idx_parsed *d = parse_str(NULL, html);
    assert_string_equal(d->title, "Article Title");
    char *all = all_text(d);
    assert_null(strstr(all, "MENU"));
    assert_null(strstr(all, "SIDEBAR"));
    assert_non_null(strstr(all, "real article body"));
    free(all);
    assert_non_null(block_with_heading(d, "Article Title"));
    idx_parsed_free(d);

    /* a tiny <main> is ignored: the body wins */
    const char *tiny = "<html><body><main>tiny</main><p>Body text outside main.</p></body></html>";
    d = parse_str("t.html", tiny);
    all = all_text(d);
    assert_non_null(strstr(all, "tiny"));
    assert_non_null(strstr(all, "Body text outside main."));
    assert_string_equal(d->title, "t");
    free(all);
    idx_parsed_free(d);
}

static void test_html_gbk_meta(void **state)
{
    (void)state;
    const char *u = "<html><head><meta charset=\"gbk\"><title>中文标题</title></head>"
                    "<body><h1>知识库</h1><p>这是一个使用GBK编码的网页，内容为中文。</p></body></html>";
    /* truly GBK-encoded bytes */
    size_t n;
    char *g = to_gbk(u, &n);
    idx_parsed *d = parse_ok("gbk.html", g, n);
    assert_string_equal(d->charset, "GB18030");
    assert_string_equal(d->title, "中文标题");
    const idx_block *b = block_with_heading(d, "知识库");
    assert_non_null(b);
    assert_string_equal(b->text, "知识库\n\n这是一个使用GBK编码的网页，内容为中文。");
    idx_parsed_free(d);
    free(g);

    /* UTF-8 bytes that lie about being GBK: the meta must not win */
    d = parse_str("liar.html", u);
    assert_string_equal(d->charset, "UTF-8");
    assert_string_equal(d->title, "中文标题");
    b = block_with_heading(d, "知识库");
    assert_non_null(b);
    assert_non_null(strstr(b->text, "这是一个使用GBK编码的网页"));
    idx_parsed_free(d);
}

static void test_html_malformed(void **state)
{
    (void)state;
    const char *bad = "<html><body><p>unclosed <b>bold <i>italic<div>div text</p></table>"
                      "<h2>Late heading<p>after";
    idx_parsed *d = parse_str("bad.html", bad);
    char *all = all_text(d);
    assert_non_null(strstr(all, "unclosed bold italic"));
    assert_non_null(strstr(all, "after"));
    free(all);
    idx_parsed_free(d);

    /* deep nesting does not recurse */
    size_t depth = 20000;
    char *deep = malloc(depth * 5 + 64);
    size_t k = 0;
    k += (size_t)sprintf(deep, "<html><body>");
    for (size_t i = 0; i < depth; i++) { memcpy(deep + k, "<div>", 5); k += 5; }
    memcpy(deep + k, "deep text", 9);
    k += 9;
    d = parse_ok("deep.html", deep, k);
    all = all_text(d);
    assert_non_null(strstr(all, "deep"));
    free(all);
    idx_parsed_free(d);
    free(deep);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_binary_unsupported),
        cmocka_unit_test(test_txt),
        cmocka_unit_test(test_txt_gbk),
        cmocka_unit_test(test_markdown),
        cmocka_unit_test(test_markdown_no_h1),
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_html_main_and_title_fallback),
        cmocka_unit_test(test_html_gbk_meta),
        cmocka_unit_test(test_html_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
