/* Exact Connect Four solver (7 columns x 6 rows) for deepq's benchmarks; MIT licence, as the project.
 *
 * Board: one 64-bit bitboard per set of stones, column-major, 7 bits per column (bit 7*c + r, row 0 at the bottom),
 * the seventh bit of each column always empty (a sentinel: no line wraps from one column into the next). A position
 * is `mine` (the stones of the player to move) and `all` (every stone); `mine + all` identifies it uniquely.
 *
 * Search: negamax with alpha-beta over null windows (the root narrows [min, max] by a binary search biased towards
 * 0), a transposition table of lower and upper bounds, moves that hand the opponent an immediate win never tried
 * (a forced block is the only move tried; two threats to block is a loss), and moves ordered by the number of
 * winning cells they create, centre columns first among equals.
 *
 * Score, for the player to move: 0 a draw; 22 - k if that player wins with their k-th stone (1 for a win with the
 * 21st); -(22 - k) if the opponent wins with their k-th stone. Equivalently a win with the move played after n
 * stones are on the board scores (43 - n) / 2, rounded down.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define W 7
#define H 6
#define CELLS (W * H)
#define INVALID (-1000)
#define TT_SIZE 8388593u /* a prime > 2^17: with the key's low 32 bits, the 49-bit key is recovered exactly */

typedef uint64_t bb;

static const bb BOTTOM = 0x0040810204081ull;              /* row 0 of every column */
static const bb FULL = 0x0040810204081ull * ((1ull << H) - 1); /* every playable cell */

static bb col_cells(int c) { return ((1ull << H) - 1) << (c * (H + 1)); }
static bb col_top(int c) { return 1ull << (H - 1 + c * (H + 1)); }
static bb col_bottom(int c) { return 1ull << (c * (H + 1)); }

typedef struct {
    bb mine, all;
    int n; /* stones on the board */
} Pos;

typedef struct {
    uint32_t key;
    int8_t lo, hi; /* bounds on the score: lo <= score <= hi */
    uint16_t used;
} Entry;

static Entry *table;
static uint64_t node_count;

/* Empty cells that would complete a line of four for `s` (whether playable now or not). */
static bb threats(bb s, bb all) {
    bb t = (s << 1) & (s << 2) & (s << 3); /* vertical: only upwards */
    static const int dirs[3] = {H + 1, H, H + 2};
    for (int i = 0; i < 3; i++) {
        int d = dirs[i];
        bb two_up = (s << d) & (s << 2 * d), two_down = (s >> d) & (s >> 2 * d);
        t |= two_up & (s << 3 * d);   /* cell after three stones */
        t |= two_down & (s >> 3 * d); /* cell before three stones */
        t |= two_up & (s >> d);       /* gap: two stones one side, one the other */
        t |= two_down & (s << d);
    }
    return t & (FULL ^ all);
}

static bb playable(const Pos *p) { return (p->all + BOTTOM) & FULL; }
static int can_play(const Pos *p, int c) { return (p->all & col_top(c)) == 0; }
static bb move_cell(const Pos *p, int c) { return (p->all + col_bottom(c)) & col_cells(c); }
static int wins_now(const Pos *p, int c) { return (threats(p->mine, p->all) & move_cell(p, c)) != 0; }
static int can_win_now(const Pos *p) { return (threats(p->mine, p->all) & playable(p)) != 0; }

static void play_cell(Pos *p, bb cell) {
    p->mine ^= p->all; /* the opponent's stones become the mover's */
    p->all |= cell;
    p->n++;
}

/* Cells the mover may play without giving the opponent an immediate win (0: every move loses at once). */
static bb safe_moves(const Pos *p) {
    bb open = playable(p);
    bb theirs = threats(p->mine ^ p->all, p->all);
    bb must = open & theirs;
    if (must) {
        if (must & (must - 1)) return 0; /* two threats: one can be blocked, not both */
        open = must;
    }
    return open & ~(theirs >> 1); /* not directly below an opponent's winning cell */
}

static void tt_init(void) {
    if (!table) table = calloc(TT_SIZE, sizeof(Entry));
}

static Entry *tt_find(bb key) {
    Entry *e = &table[key % TT_SIZE];
    return (e->used && e->key == (uint32_t)key) ? e : NULL;
}

static void tt_store(bb key, int lo, int hi) {
    Entry *e = &table[key % TT_SIZE];
    if (e->used && e->key == (uint32_t)key) { /* same position: keep the tighter of each bound */
        if (lo > e->lo) e->lo = (int8_t)lo;
        if (hi < e->hi) e->hi = (int8_t)hi;
        return;
    }
    e->key = (uint32_t)key;
    e->lo = (int8_t)lo;
    e->hi = (int8_t)hi;
    e->used = 1;
}

static const int ORDER[W] = {3, 2, 4, 1, 5, 0, 6}; /* centre first */

/* Score within the window: exact if alpha < score < beta, else a bound on the same side. The mover must not have
 * an immediate win (checked by the caller); a move here never gives the opponent one. */
static int negamax(const Pos *p, int alpha, int beta) {
    node_count++;
    bb next = safe_moves(p);
    if (!next) return -(CELLS - p->n) / 2; /* the opponent wins with their next stone */
    if (p->n >= CELLS - 2) return 0;       /* we play, they fill the board without a win */
    int lo = -(CELLS - 2 - p->n) / 2;      /* the opponent cannot win before their second stone from here */
    int hi = (CELLS - 1 - p->n) / 2;       /* we cannot win before our second stone from here */
    bb key = p->mine + p->all;
    Entry *e = tt_find(key);
    if (e) {
        if (e->lo > lo) lo = e->lo;
        if (e->hi < hi) hi = e->hi;
    }
    if (alpha < lo) {
        alpha = lo;
        if (alpha >= beta) return alpha;
    }
    if (beta > hi) {
        beta = hi;
        if (alpha >= beta) return beta;
    }
    /* order: most winning cells created first, centre first among equals (stable insertion) */
    bb cells[W];
    int rank[W], m = 0;
    for (int i = 0; i < W; i++) {
        bb cell = next & col_cells(ORDER[i]);
        if (!cell) continue;
        int r = __builtin_popcountll(threats(p->mine | cell, p->all | cell));
        int j = m++;
        for (; j > 0 && rank[j - 1] < r; j--) {
            rank[j] = rank[j - 1];
            cells[j] = cells[j - 1];
        }
        rank[j] = r;
        cells[j] = cell;
    }
    for (int i = 0; i < m; i++) {
        Pos child = *p;
        play_cell(&child, cells[i]);
        int v = -negamax(&child, -beta, -alpha);
        if (v >= beta) {
            tt_store(key, v, (CELLS - 1 - p->n) / 2);
            return v;
        }
        if (v > alpha) alpha = v;
    }
    tt_store(key, -(CELLS - 2 - p->n) / 2, alpha);
    return alpha;
}

static int solve_pos(const Pos *p) {
    if (p->n >= CELLS) return 0;
    if (can_win_now(p)) return (CELLS + 1 - p->n) / 2;
    int lo = -(CELLS - p->n) / 2, hi = (CELLS + 1 - p->n) / 2;
    while (lo < hi) { /* null-window probes: is the score above mid? */
        int mid = lo + (hi - lo) / 2;
        if (mid <= 0 && lo / 2 < mid) mid = lo / 2; /* probe near 0 first: most positions are close */
        else if (mid >= 0 && hi / 2 > mid) mid = hi / 2;
        int r = negamax(p, mid, mid + 1);
        if (r <= mid) hi = r;
        else lo = r;
    }
    return lo;
}

/* The position after `moves` ('1'..'7'); 0 if a move is not a column digit, its column is full, or the game ended
 * before the last move (a move that wins makes the position terminal: invalid too). */
static int parse(const char *moves, Pos *p) {
    memset(p, 0, sizeof *p);
    for (const char *s = moves; *s; s++) {
        int c = *s - '1';
        if (c < 0 || c >= W || !can_play(p, c) || wins_now(p, c)) return 0;
        play_cell(p, move_cell(p, c));
    }
    return 1;
}

int c4_solve(const char *moves) {
    Pos p;
    if (!moves || !parse(moves, &p)) return INVALID;
    tt_init();
    if (!table) return INVALID;
    return solve_pos(&p);
}

void c4_solve_all(const char *moves, int *out) {
    Pos p;
    for (int c = 0; c < W; c++) out[c] = INVALID;
    if (!moves || !parse(moves, &p)) return;
    tt_init();
    if (!table) return;
    for (int c = 0; c < W; c++) {
        if (!can_play(&p, c)) continue;
        if (wins_now(&p, c)) {
            out[c] = (CELLS + 1 - p.n) / 2;
            continue;
        }
        Pos child = p;
        play_cell(&child, move_cell(&p, c));
        out[c] = -solve_pos(&child);
    }
}

void c4_reset(void) {
    if (table) memset(table, 0, (size_t)TT_SIZE * sizeof(Entry));
}

uint64_t c4_nodes(void) { return node_count; }
