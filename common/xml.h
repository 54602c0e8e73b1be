/* vmbk: reading XML with libxml2 and XPath */
#pragma once

#include <libxml/tree.h>
#include <libxml/xmlwriter.h>
#include <libxml/xpath.h>

#include "vmbk-autoptr.h"

/* An xmlTextWriter into a memory buffer, and its end: the document as a string, both freed. */
xmlTextWriterPtr vmbkXmlWriterNew(xmlBufferPtr *buf);
char *vmbkXmlWriterFinish(xmlTextWriterPtr w, xmlBufferPtr buf);

/* Parse text; 'what' names it in the error ("the XML of domain 'web01'"). */
xmlDocPtr vmbkXmlParse(const char *text, const char *what);
xmlDocPtr vmbkXmlParseFile(const char *path);

/* The string value of an XPath expression evaluated at node (NULL: the document), or NULL when
 * the expression yields nothing or an empty string. */
char *vmbkXPathString(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr);

/* The nodes an XPath expression selects; an empty result is a NULL with *n == 0. */
xmlXPathObjectPtr vmbkXPathNodes(xmlXPathContextPtr ctx, xmlNodePtr node, const char *expr);
