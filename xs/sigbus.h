/* xs/sigbus.h - keep the engine's SIGBUS handler in front of Perl's.
 *
 * The engine installs a process-wide SIGBUS handler when a map is opened
 * (rust/src/sigbus.rs): a fault inside a map whose file was truncated is
 * absorbed and reported as a croak, every other SIGBUS goes on to the
 * disposition that was there before. Perl replaces the handler whenever
 * code assigns $SIG{BUS} (or a `local $SIG{BUS}` ends); had that the last
 * word, a truncated map would run the Perl handler in the middle of an
 * engine call (and a handler that dies would leave it there).
 *
 * So BOOT puts one more piece of set magic on the $SIG{BUS} element, at the
 * END of its magic chain: it runs right after Perl's own (which calls
 * sigaction) and asks the engine to reinstall its handler in front of
 * whatever Perl just installed. Perl's handler then gets exactly the SIGBUS
 * signals that are not ours. `local $SIG{BUS}` copies the magic to the new
 * value (svt_local), and restoring the old value runs it again.
 *
 * Not covered: `delete $SIG{BUS}` or `%SIG = (...)` (they replace the
 * element, dropping the magic; the next map opened reinstalls the handler),
 * and changes made by C code with sigaction (same).
 */
#ifndef DHMS_SIGBUS_H
#define DHMS_SIGBUS_H

/* rust/src/sigbus.rs: reinstall the engine's handler if a map was opened */
void dhms_sigbus_reassert(void);

static int S_sigbus_set(pTHX_ SV *sv, MAGIC *mg);
static int S_sigbus_local(pTHX_ SV *nsv, MAGIC *mg);

static MGVTBL S_sigbus_vtbl = {
    NULL,            /* get */
    S_sigbus_set,    /* set */
    NULL, NULL, NULL, NULL, NULL,
    S_sigbus_local,  /* local: copy ourselves onto the localized value */
};

/* Attach our magic to sv, as the last of its magic. */
static void S_sigbus_attach(pTHX_ SV *sv)
{
    MAGIC *mg, **tail;

    if (mg_findext(sv, PERL_MAGIC_ext, &S_sigbus_vtbl))
        return;
    /* sv_magicext puts the new magic first; move it to the end so that
       mg_set runs it after Perl's own signal magic */
    mg = sv_magicext(sv, NULL, PERL_MAGIC_ext, &S_sigbus_vtbl, NULL, 0);
    mg->mg_flags |= MGf_LOCAL;    /* mg_localize calls svt_local */
    if (SvMAGIC(sv) == mg && mg->mg_moremagic) {
        SvMAGIC_set(sv, mg->mg_moremagic);
        mg->mg_moremagic = NULL;
        for (tail = &SvMAGIC(sv)->mg_moremagic; *tail; tail = &(*tail)->mg_moremagic)
            ;
        *tail = mg;
    }
}

static int S_sigbus_set(pTHX_ SV *sv, MAGIC *mg)
{
    PERL_UNUSED_ARG(sv);
    PERL_UNUSED_ARG(mg);
    dhms_sigbus_reassert();
    return 0;
}

static int S_sigbus_local(pTHX_ SV *nsv, MAGIC *mg)
{
    PERL_UNUSED_ARG(mg);
    S_sigbus_attach(aTHX_ nsv);
    return 0;
}

/* BOOT: the magic on $SIG{BUS} (Perl creates an element per signal). */
static void S_sigbus_boot(pTHX)
{
    SV **svp = hv_fetchs(get_hv("SIG", GV_ADD), "BUS", 1);

    if (svp && *svp)
        S_sigbus_attach(aTHX_ *svp);
}

#endif
