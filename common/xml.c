/* vmbk: reading XML with libxml2 and XPath */
#include <config.h>

#include <libxml/parser.h>

#include "vmbk-error.h"
#include "xml.h"

static void
vmbkXmlSilence(void *ctx G_GNUC_UNUSED, const char *msg G_GNUC_UNUSED, ...)
{
}

xmlDocPtr
vmbkXmlParse(const char *text, const char *what)
{
    xmlDocPtr doc;

    xmlSetGenericErrorFunc(NULL, vmbkXmlSilence);
    doc = xmlReadMemory(text, strlen(text), NULL, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR |
                        XML_PARSE_NOWARNING);
    if (!doc) {
        const xmlError *err = xmlGetLastError();
        vmbkError(VMBK_ERR_OPERATION, "cannot parse %s: %s", what,
                  err && err->message ? g_strchomp(g_strdup(err->message)) : "not well-formed");
    }
    return doc;
}

xmlDocPtr
vmbkXmlParseFile(const char *path)
{
    g_autofree char *text = NULL;
    g_autofree char *what = NULL;
    g_autoptr(GError) err = NULL;

    if (!g_file_get_contents(path, &text, NULL, &err)) {
        vmbkError(VMBK_ERR_OPERATION, "cannot read '%s': %s", path, err->message);
        return NULL;
    }
    what = g_strdup_printf("'%s'", path);
    return vmbkXmlParse(text, what);
}

char *
vmbkXPathString(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr)
{
    g_autoptr(xmlXPathObject) obj = NULL;
    xmlChar *str;
    char *ret;

    ctx->node = node ? node : xmlDocGetRootElement(ctx->doc);
    if (!(obj = xmlXPathEvalExpression(BAD_CAST expr, ctx)))
        return NULL;
    if (!(str = xmlXPathCastToString(obj)))
        return NULL;
    ret = *str ? g_strdup((const char *) str) : NULL;
    xmlFree(str);
    return ret;
}

xmlXPathObjectPtr
vmbkXPathNodes(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr)
{
    xmlXPathObjectPtr obj;

    ctx->node = node ? node : xmlDocGetRootElement(ctx->doc);
    obj = xmlXPathEvalExpression(BAD_CAST expr, ctx);
    if (obj && obj->type != XPATH_NODESET) {
        xmlXPathFreeObject(obj);
        return NULL;
    }
    return obj;
}

xmlTextWriterPtr
vmbkXmlWriterNew(xmlBufferPtr *buf)
{
    *buf = xmlBufferCreate();
    return xmlNewTextWriterMemory(*buf, 0);
}

char *
vmbkXmlWriterFinish(xmlTextWriterPtr w, xmlBufferPtr buf)
{
    char *ret;

    xmlFreeTextWriter(w); /* flushes into buf */
    ret = g_strdup((const char *) xmlBufferContent(buf));
    xmlBufferFree(buf);
    return ret;
}
