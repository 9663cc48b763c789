# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_skim_global_optspecs
    string join \n json v/verbose env-file= db= h/help V/version
end

function __fish_skim_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_skim_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_skim_using_subcommand
    set -l cmd (__fish_skim_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c skim -n "__fish_skim_needs_command" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_needs_command" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_needs_command" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_needs_command" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_needs_command" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_needs_command" -s V -l version -d 'Print version'
complete -c skim -n "__fish_skim_needs_command" -f -a "keys-gen" -d 'Make the key files IBKR\'s self-service OAuth portal asks for'
complete -c skim -n "__fish_skim_needs_command" -f -a "auth-check" -d 'Prove, step by step, that skim can sign in to IBKR, and say why not'
complete -c skim -n "__fish_skim_needs_command" -f -a "scan" -d 'Find today\'s gap-up stocks with a price-sensitive ASX announcement'
complete -c skim -n "__fish_skim_needs_command" -f -a "trade" -d 'Place entries, manage exits, and the kill switch'
complete -c skim -n "__fish_skim_needs_command" -f -a "positions" -d 'Positions, working orders and P&L, reconciled with the broker'
complete -c skim -n "__fish_skim_needs_command" -f -a "notify" -d 'Send a Discord message through the outbox, or deliver what is queued'
complete -c skim -n "__fish_skim_needs_command" -f -a "generate" -d 'Write the man pages or shell completions (for packagers; see scripts/install)'
complete -c skim -n "__fish_skim_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l dir -d 'Folder for the key files [env: OAUTH_KEYS_DIR] [default: ./oauth_keys]' -r -F
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l dh-bits -d 'Size of the fresh Diffie-Hellman prime' -r
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l dh-group -d 'Use a published group instead of searching for a fresh prime' -r -f -a "ffdhe2048\t'RFC 7919\'s 2048-bit group'"
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l prime-from -d 'Only print the OAUTH_DH_PRIME line of an existing dhparam.pem (e.g. one made by openssl)' -r -F
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l force -d 'Replace existing key files'
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand keys-gen" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c skim -n "__fish_skim_using_subcommand auth-check" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand auth-check" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand auth-check" -l fresh -d 'Make a new live session token instead of reusing the cached one'
complete -c skim -n "__fish_skim_using_subcommand auth-check" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand auth-check" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand auth-check" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand scan" -l min-gap -d 'Minimum gap of the open over the prior close, in percent' -r
complete -c skim -n "__fish_skim_using_subcommand scan" -l min-price -d 'Minimum last traded price, AUD' -r
complete -c skim -n "__fish_skim_using_subcommand scan" -l min-volume -d 'Minimum shares traded today' -r
complete -c skim -n "__fish_skim_using_subcommand scan" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand scan" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand scan" -l dry-run -d 'Scan and print, but store nothing and send nothing'
complete -c skim -n "__fish_skim_using_subcommand scan" -l no-notify -d 'Store the results but send no Discord message'
complete -c skim -n "__fish_skim_using_subcommand scan" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand scan" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand scan" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -f -a "enter" -d 'Place bracket orders on the break of today\'s opening-range highs'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -f -a "manage" -d 'Reconcile with the broker, then cancel stale entries and run the exits'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -f -a "halt" -d 'Block new entries until `skim trade resume`; optionally close everything'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -f -a "resume" -d 'Lift the kill switch so entries may be placed again'
complete -c skim -n "__fish_skim_using_subcommand trade; and not __fish_seen_subcommand_from enter manage halt resume help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l or-minutes -d 'Length of the opening range after the first trade, in minutes' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l position-value -d 'Target value of each new position, AUD' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l max-positions -d 'Most positions open or entering at once' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l max-risk -d 'Skip when (entry - stop) / entry is above this, in percent' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l max-chase -d 'Skip when the last price is already this far above the range high, in percent' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l limit-cap -d 'Send stop-limit entries capped this far above the stop, in percent (default: stop-market)' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l dry-run -d 'Show what would be placed, but send and store nothing'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from enter" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -l cutoff -d 'Cancel entries still unfilled at this Sydney time' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -l dry-run -d 'Show what would be done, but send and store nothing'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from manage" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -l reason -d 'Why; shown by `skim positions` and in the notification' -r
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -l flatten -d 'Also cancel working orders and sell every position skim holds'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from halt" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from resume" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from resume" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from resume" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from resume" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from resume" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from help" -f -a "enter" -d 'Place bracket orders on the break of today\'s opening-range highs'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from help" -f -a "manage" -d 'Reconcile with the broker, then cancel stale entries and run the exits'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from help" -f -a "halt" -d 'Block new entries until `skim trade resume`; optionally close everything'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from help" -f -a "resume" -d 'Lift the kill switch so entries may be placed again'
complete -c skim -n "__fish_skim_using_subcommand trade; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c skim -n "__fish_skim_using_subcommand positions" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand positions" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand positions" -l all -d 'Also list closed trades with their realized P&L'
complete -c skim -n "__fish_skim_using_subcommand positions" -l notify -d 'Post the summary to Discord'
complete -c skim -n "__fish_skim_using_subcommand positions" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand positions" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand positions" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand notify" -l title -d 'Send an embed with this title' -r
complete -c skim -n "__fish_skim_using_subcommand notify" -l color -d 'Embed colour: green, yellow, red, blue, grey, or hex like #00ff00' -r
complete -c skim -n "__fish_skim_using_subcommand notify" -l field -d 'Add an embed field (repeatable)' -r
complete -c skim -n "__fish_skim_using_subcommand notify" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand notify" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand notify" -l stdin -d 'Read the message from stdin as JSON: an embed object or a whole payload'
complete -c skim -n "__fish_skim_using_subcommand notify" -l flush -d 'Only deliver what is queued'
complete -c skim -n "__fish_skim_using_subcommand notify" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand notify" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand notify" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "man" -d 'Write skim.1 and one page per subcommand (skim-trade-enter.1, ...) into DIR'
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "completions" -d 'Write skim.bash, _skim (zsh) and skim.fish into DIR'
complete -c skim -n "__fish_skim_using_subcommand generate; and not __fish_seen_subcommand_from man completions help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from man" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from man" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from man" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from man" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from man" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from completions" -l env-file -d 'Read settings from PATH instead of ./.env (real environment variables still win)' -r -F
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from completions" -l db -d 'SQLite database file [env: SKIM_DB] [default: ./data/skim.db]' -r -F
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from completions" -l json -d 'Print exactly one JSON document on stdout'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from completions" -s v -l verbose -d 'Log more on stderr (-v info, -vv debug); RUST_LOG also works'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from completions" -s h -l help -d 'Print help'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "man" -d 'Write skim.1 and one page per subcommand (skim-trade-enter.1, ...) into DIR'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "completions" -d 'Write skim.bash, _skim (zsh) and skim.fish into DIR'
complete -c skim -n "__fish_skim_using_subcommand generate; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "keys-gen" -d 'Make the key files IBKR\'s self-service OAuth portal asks for'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "auth-check" -d 'Prove, step by step, that skim can sign in to IBKR, and say why not'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "scan" -d 'Find today\'s gap-up stocks with a price-sensitive ASX announcement'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "trade" -d 'Place entries, manage exits, and the kill switch'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "positions" -d 'Positions, working orders and P&L, reconciled with the broker'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "notify" -d 'Send a Discord message through the outbox, or deliver what is queued'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "generate" -d 'Write the man pages or shell completions (for packagers; see scripts/install)'
complete -c skim -n "__fish_skim_using_subcommand help; and not __fish_seen_subcommand_from keys-gen auth-check scan trade positions notify generate help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c skim -n "__fish_skim_using_subcommand help; and __fish_seen_subcommand_from trade" -f -a "enter" -d 'Place bracket orders on the break of today\'s opening-range highs'
complete -c skim -n "__fish_skim_using_subcommand help; and __fish_seen_subcommand_from trade" -f -a "manage" -d 'Reconcile with the broker, then cancel stale entries and run the exits'
complete -c skim -n "__fish_skim_using_subcommand help; and __fish_seen_subcommand_from trade" -f -a "halt" -d 'Block new entries until `skim trade resume`; optionally close everything'
complete -c skim -n "__fish_skim_using_subcommand help; and __fish_seen_subcommand_from trade" -f -a "resume" -d 'Lift the kill switch so entries may be placed again'
complete -c skim -n "__fish_skim_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "man" -d 'Write skim.1 and one page per subcommand (skim-trade-enter.1, ...) into DIR'
complete -c skim -n "__fish_skim_using_subcommand help; and __fish_seen_subcommand_from generate" -f -a "completions" -d 'Write skim.bash, _skim (zsh) and skim.fish into DIR'
